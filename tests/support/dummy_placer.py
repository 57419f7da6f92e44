"""A placing method made the way a plugin would: one artefact (a JSON file in its own sub-folder) and a placer."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from pigeon.geo import spherical_mean
from pigeon.model import Placement
from pigeon.model.placers import Artefact, TrainingData, register_placer, unregister_placer

NAME = "dummy"


class MeanLocation(Artefact):
    """The spherical mean of the training locations."""

    name = NAME
    description = "the spherical mean of the training locations (a test artefact)"
    build_hint = "pigeon train ... --methods dummy"
    default = False

    def build(self, geo, data: TrainingData, config, show_progress: bool = True) -> tuple[float, float]:
        lat, lon = spherical_mean(data.coords[:, 0], data.coords[:, 1])
        return float(lat), float(lon)

    def load(self, folder: Path) -> tuple[float, float]:
        return tuple(json.loads((folder / "mean.json").read_text()))

    def save(self, value, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "mean.json").write_text(json.dumps(list(value)))


MEAN = MeanLocation()


def place_mean(geo, X: np.ndarray, probs: np.ndarray, k: int) -> Placement:
    """One candidate per query: the training mean, in the cell that contains it."""
    lat, lon = geo.artefacts[NAME]
    cell = int(geo.cells.assign(np.array([lat]), np.array([lon]))[0])
    n = len(X)
    return Placement(np.full((n, 1), cell), np.tile([[[lat, lon]]], (n, 1, 1)), np.ones((n, 1)), np.zeros(n, bool))


@contextlib.contextmanager
def registered():
    """The dummy method in the registry for the duration of a ``with`` block."""
    register_placer(NAME, "the training locations' spherical mean (a test method)", needs=(MEAN,))(place_mean)
    try:
        yield NAME
    finally:
        unregister_placer(NAME)
