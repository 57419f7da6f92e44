"""Build a model's refiner from its training manifest (and, when it matches the model, an embeddings store)."""

from __future__ import annotations

import os

import pandas as pd

from pigeon.errors import InputError
from pigeon.refine._config import RefineConfig
from pigeon.refine._refiner import Refiner


def build_refiner(geo, manifest: str | os.PathLike | pd.DataFrame, embeddings=None,
                  config: RefineConfig | None = None, *, split: str | None = "train",
                  show_progress: bool = True) -> Refiner:
    """The refiner of a geolocator: its training locations, clustered per cell, with their embeddings.

    Args:
        geo: the :class:`pigeon.model.Geolocator` (its cells, backbone and view rule).
        manifest: the training manifest (path or DataFrame); rows of ``split`` when it has a split column.
        embeddings: an :class:`pigeon.embed.Embeddings` store (or its folder) made with the model's backbone;
            None embeds the images with the model (needed after fine-tuning the backbone). Rows without an
            embedding or a readable image are left out.
        config: a :class:`RefineConfig`.
        split: which rows are the gallery (None: all rows).
        show_progress: progress bars.

    Returns:
        The :class:`Refiner` (not yet attached: ``geo.set_refiner(refiner)``).
    """
    from pigeon.data import read_manifest, training_rows
    from pigeon.model._predict import manifest_embeddings

    config = config or RefineConfig()
    geo.check_refine_config(config)
    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    df = training_rows(df, split) if split is not None else df
    if df.empty:
        raise InputError("no rows to build the refiner from; pass the training manifest")
    if embeddings is not None and not hasattr(embeddings, "get_views"):
        from pigeon.embed import Embeddings

        embeddings = Embeddings.load(embeddings)
    X, ids, failures = manifest_embeddings(geo, df, embeddings, skip_errors=True)
    if not len(ids):
        raise InputError(f"none of the {len(df)} gallery rows has an embedding or a readable image "
                         f"(e.g. {failures['error'].iat[0] if len(failures) else '?'}); check the manifest")
    rows = df.set_index(df["id"].astype(str)).loc[ids]
    coords = rows[["lat", "lon"]].to_numpy(float)
    cells = geo.cells.assign(coords[:, 0], coords[:, 1])
    return Refiner.build(X, coords, cells, geo.n_cells, config, ids=ids, backbone=geo.backbone_id,
                         show_progress=show_progress)
