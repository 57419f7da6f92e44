"""Building the geoclip method from training data: train the towers, then encode the gallery."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from pigeon.model.geoclip._gallery import gallery_table, read_gallery
from pigeon.model.geoclip._model import GeoClip
from pigeon.model.geoclip._config import GeoClipConfig
from pigeon.model.geoclip._train import fit_geoclip

#: The gallery when none is given.
TRAINING_LOCATIONS = "training locations"


def training_pairs(X, coords: np.ndarray, cells: np.ndarray, ids: np.ndarray,
                   views: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (embedding, location) pairs to train on: one per location (its pooled embedding), or with ``views`` one
    per view of each location when ``X`` reads from an embeddings store (:class:`pigeon.model.StoreRows`)."""
    if not views or not hasattr(X, "emb"):
        return np.asarray(X[:], np.float32), coords, cells, ids
    per_location = X.emb.get_views(X.ids)
    counts = np.array([len(v) for v in per_location])
    repeat = lambda a: np.repeat(np.asarray(a), counts, axis=0)  # noqa: E731
    return np.concatenate(per_location).astype(np.float32), repeat(coords), repeat(cells), repeat(ids)


def build_geoclip(X: np.ndarray, coords: np.ndarray, cells: np.ndarray, config: GeoClipConfig | None = None, *,
                  ids: np.ndarray | None = None, assign: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                  backbone: str | None = None, val: tuple[np.ndarray, np.ndarray] | None = None,
                  out_dir: str | os.PathLike | None = None, resume: bool = False) -> GeoClip:
    """Train the towers on the training pairs and attach the gallery.

    Args:
        X: (N, D) training embeddings (every process of a torchrun job passes all of them).
        coords: (N, 2) their (lat, lon), degrees.
        cells: (N,) the model's cell of each.
        config: a :class:`GeoClipConfig`; its ``gallery`` file (lat, lon) replaces the default gallery, the
            distinct training locations.
        ids: (N,) row ids, kept with the training-location gallery.
        assign: ``assign(lat, lon) -> cells`` for a gallery file's points (the model's ``cells.assign``).
        backbone: the embeddings' backbone id, recorded.
        val: ``(X_val, coords_val)`` choosing the epoch (default: held out from the training pairs).
        out_dir, resume: the engine's checkpoint, log and curves (see :func:`fit_geoclip`).
    """
    config = (config or GeoClipConfig()).validate()
    fit = fit_geoclip(X, coords, config, val=val, out_dir=out_dir, resume=resume)
    coords = np.asarray(coords, np.float64)
    if config.gallery is not None:
        points = read_gallery(config.gallery)
        if assign is None:
            raise ValueError("a gallery file needs assign= to find the cell of each point")
        gallery, source = gallery_table(points, assign(points[:, 0], points[:, 1])), str(config.gallery)
    else:
        _, first = np.unique(coords, axis=0, return_index=True)
        first = np.sort(first)
        kept_ids = None if ids is None else np.asarray(ids)[first]
        gallery = gallery_table(coords[first], np.asarray(cells)[first], kept_ids)
        source = TRAINING_LOCATIONS
    record = {"best": fit.best, "epochs_run": len(fit.history), "n_train": fit.n_train, "n_val": fit.n_val}
    return GeoClip(fit.towers, gallery, {"backbone": backbone, "train": config.to_dict(), "fit": record,
                                         "gallery": {"source": source, "n_points": len(gallery)}})


def use_gallery(geo, gallery) -> None:
    """Place ``geo``'s geoclip guesses on other points: a ``lat,lon`` file (CSV / Parquet) or an (N, 2) array of
    (lat, lon) degrees; each point is assigned to the model's cells (a head made of the gallery follows)."""
    from pigeon.errors import InputError
    from pigeon.model.geoclip._head import GalleryHead
    from pigeon.validation import check_coords

    method = geo.artefacts.get("geoclip")
    if method is None:
        raise InputError("a gallery is for the geoclip method and this model has none; build it with 'pigeon train "
                         "... --methods refine,geoclip'")
    if isinstance(gallery, (str, os.PathLike)):
        points, source = read_gallery(gallery), str(gallery)
    else:
        array = np.asarray(gallery, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 2:
            raise InputError(f"a gallery array must be (N, 2) (lat, lon), got shape {array.shape}")
        lat, lon = check_coords(array[:, 0], array[:, 1], "gallery")
        points, source = np.column_stack([lat, lon]), f"{len(lat)} points given"
    new = method.with_gallery(gallery_table(points, geo.cells.assign(points[:, 0], points[:, 1])), source)
    geo.artefacts.pop("geoclip")
    geo.attach("geoclip", new)
    if isinstance(geo.head, GalleryHead):
        geo.head = GalleryHead(new, geo.n_cells).to(geo._device).eval()
