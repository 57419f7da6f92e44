"""Building the geoclip method from training data: train the towers, then encode the gallery."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from pigeon.model.geoclip._gallery import gallery_table, read_gallery
from pigeon.model.geoclip._model import GeoClip
from pigeon.model.geoclip._train import GeoClipConfig, fit_geoclip

#: The gallery when none is given.
TRAINING_LOCATIONS = "training locations"


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
        gallery = gallery_table(coords[first], np.asarray(cells)[first], None if ids is None else np.asarray(ids)[first])
        source = TRAINING_LOCATIONS
    record = {"best": fit.best, "epochs_run": len(fit.history), "n_train": fit.n_train, "n_val": fit.n_val}
    return GeoClip(fit.towers, gallery, {"backbone": backbone, "train": config.to_dict(), "fit": record,
                                         "gallery": {"source": source, "n_points": len(gallery)}})
