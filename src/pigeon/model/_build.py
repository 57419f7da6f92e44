"""Building the placing methods' artefacts (the refiner...) of a model from its training data.

Model glue: it reads a manifest and embeds it with the model (:func:`manifest_embeddings`), then hands a
:class:`pigeon.model.placers.TrainingData` to each artefact's ``build``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from pigeon.errors import InputError
from pigeon.model import placers
from pigeon.model._geolocator import Geolocator
from pigeon.model._predict import manifest_embeddings
from pigeon.model.placers import Artefact, TrainingData


def training_data(geo: Geolocator, manifest: str | os.PathLike | pd.DataFrame, embeddings=None, *,
                  split: str | None = "train") -> TrainingData:
    """The training locations of a manifest under the model's backbone, view rule and cells.

    Args:
        geo: the model.
        manifest: a manifest path or DataFrame; rows of ``split`` when it has a split column.
        embeddings: an :class:`pigeon.embed.Embeddings` store (or its folder) made with the model's backbone;
            None embeds the images with the model (needed after fine-tuning the backbone). Rows without an
            embedding or a readable image are left out.
        split: which rows (None: all rows).
    """
    from pigeon.data import read_manifest, training_rows

    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    df = training_rows(df, split) if split is not None else df
    if df.empty:
        raise InputError("no rows to build from; pass the training manifest")
    if embeddings is not None and not hasattr(embeddings, "get_views"):
        from pigeon.embed import Embeddings

        embeddings = Embeddings.load(embeddings)
    X, ids, failures = manifest_embeddings(geo, df, embeddings, skip_errors=True)
    if not len(ids):
        raise InputError(f"none of the {len(df)} training rows has an embedding or a readable image "
                         f"(e.g. {failures['error'].iat[0] if len(failures) else '?'}); check the manifest")
    rows = df.set_index(df["id"].astype(str)).loc[ids]
    coords = rows[["lat", "lon"]].to_numpy(float)
    return TrainingData(ids, X, coords, geo.cells.assign(coords[:, 0], coords[:, 1]), rows)


def plan_artefacts(methods: Iterable[str] | None, n_cells: int, configs: Mapping[str, Any] | None = None,
                   preset: str | None = None) -> dict[str, tuple[Artefact, Any]]:
    """The artefacts to build for ``methods`` (None: the defaults) with their configs, checked before any work.

    ``configs`` maps an artefact name to its config; the others get the preset's.
    """
    wanted = placers.default_artefacts() if methods is None else placers.artefacts_for(methods)
    configs = dict(configs or {})
    unknown = set(configs) - set(placers.artefacts())
    if unknown:
        raise InputError(f"no placing method builds {sorted(unknown)[0]!r}; known: {', '.join(placers.artefacts())}")
    plan = {}
    for name, artefact in wanted.items():
        config = configs[name] if configs.get(name) is not None else artefact.default_config(preset)
        artefact.check_config(config, n_cells)
        plan[name] = (artefact, config)
    return plan


def build_artefacts(geo: Geolocator, data: TrainingData, plan: Mapping[str, tuple[Artefact, Any]], *,
                    show_progress: bool = True) -> Geolocator:
    """Build every planned artefact (:func:`plan_artefacts`) from ``data`` and attach it to ``geo``."""
    for name, (artefact, config) in plan.items():
        geo.artefacts.pop(name, None)
        geo.attach(name, artefact.build(geo, data, config, show_progress=show_progress))
    return geo


def build_refiner(geo: Geolocator, manifest: str | os.PathLike | pd.DataFrame, embeddings=None, config=None, *,
                  split: str | None = "train", show_progress: bool = True):
    """The refiner of a geolocator: its training locations, clustered per cell, with their embeddings.

    >>> geo.set_refiner(build_refiner(geo, "train.parquet", "emb/", RefineConfig(top_k=5, temperature=1.6)))

    Args: see :func:`training_data`; ``config`` is a :class:`pigeon.refine.RefineConfig` (default: the preset's).

    Returns:
        The :class:`pigeon.refine.Refiner` (not yet attached: ``geo.set_refiner(refiner)``).
    """
    artefact = placers.artefacts()["refiner"]
    config = config or artefact.default_config()
    artefact.check_config(config, geo.n_cells)
    return artefact.build(geo, training_data(geo, manifest, embeddings, split=split), config,
                          show_progress=show_progress)
