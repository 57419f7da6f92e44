"""What a prediction is, and the one place that builds it from the pipeline's stages.

Stages: head (cell probabilities) -> a placer of :mod:`pigeon.model.placers` (the cell centroid, the refiner, the
nearest gallery image...) -> :class:`Placement` (candidates with locations and probabilities) ->
:func:`build_predictions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Candidate:
    """One candidate place of a prediction.

    Attributes:
        cell: the geocell the candidate lies in.
        prob: the placer's probability of this candidate (:attr:`Placement.probs`); candidates are in its order.
        lat, lon: the candidate's location, degrees.
        country, admin1: the cell's country (ISO alpha-2) and first-level region.
        cell_prob: the head's own probability of :attr:`cell` (equal to ``prob`` for the ``cell`` method).
    """

    cell: int
    prob: float
    lat: float
    lon: float
    country: str | None = None
    admin1: str | None = None
    cell_prob: float = float("nan")


@dataclass
class Prediction:
    """Where one location (one image or several views) was taken.

    Attributes:
        lat, lon: the guess, degrees (``top_k[0]``'s location).
        confidence: the head's probability of the guessed cell, in [0, 1] (``top_k[0].cell_prob``; not
            calibrated).
        cell: the guessed cell.
        top_k: candidates, best first, each with a location and the placer's probability (``prob``), plus the
            head's probability of its cell (``cell_prob``).
        method: how the guess was placed (a name of :data:`pigeon.model.placers.METHODS`).
        refined: whether the guess came from retrieval (a gallery location) rather than a cell centroid.
        cell_lat, cell_lon: the head's own guess, the centroid of its most probable cell.
        aux: auxiliary predictions when the model has those heads: ``climate`` (Köppen class and prob),
            ``month`` (1..12 and prob) and regression values in their units (``elevation_m`` ...).
        probs: (C,) float32 probability of every cell (sums to 1).
    """

    lat: float
    lon: float
    confidence: float
    cell: int
    top_k: list[Candidate]
    method: str = "cell"
    refined: bool = False
    cell_lat: float = float("nan")
    cell_lon: float = float("nan")
    aux: dict[str, Any] = field(default_factory=dict)
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    _cells: Any = field(default=None, repr=False, compare=False)

    @property
    def country(self) -> str | None:
        return self.top_k[0].country if self.top_k else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the full probability vector)."""
        return {"lat": self.lat, "lon": self.lon, "confidence": self.confidence, "cell": self.cell,
                "country": self.country, "method": self.method, "refined": self.refined,
                "cell_lat": self.cell_lat, "cell_lon": self.cell_lon,
                "top_k": [vars(c) for c in self.top_k], "aux": self.aux}

    def to_geojson(self) -> dict[str, Any]:
        """A GeoJSON FeatureCollection: every cell polygon with its probability (the probability map)."""
        from shapely.geometry import mapping

        table = self._cells.table
        features = []
        for i, (geom, p) in enumerate(zip(table.geometry, self.probs)):
            features.append({
                "type": "Feature", "geometry": mapping(geom) if geom is not None else None,
                "properties": {"cell": i, "prob": float(p), "country": cell_text(table, "country", i),
                               "admin1": cell_text(table, "admin1", i),
                               "centroid_lat": float(self._cells.centroids[i, 0]),
                               "centroid_lon": float(self._cells.centroids[i, 1])},
            })
        return {"type": "FeatureCollection", "features": features,
                "properties": {"lat": self.lat, "lon": self.lon, "confidence": self.confidence,
                               "refined": self.refined}}


def cell_text(table, column: str, i: int) -> str | None:
    if column not in table.columns:
        return None
    value = table[column].iat[i]
    return value if isinstance(value, str) and value else None


def top_cells(probs: np.ndarray, k: int) -> np.ndarray:
    """(N, k) the k most probable cells of each row, best first (ties: lower index first)."""
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def cell_guess(centroids: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The guess of a cell: its centroid (the mean of its training locations). ``(..., 2)`` (lat, lon)."""
    return np.asarray(centroids, dtype=np.float64)[np.asarray(cells)]


@dataclass
class Placement:
    """What a placer decides for N locations: M candidates each, best first, with locations and probabilities.

    This is the interface between placing and everything after it (predictions, posteriors, calibration): any
    placer gives the same arrays, so a consumer needs no knowledge of the method.

    Attributes:
        cells: (N, M) int, the cell of each candidate (rank 0 is the guess).
        latlon: (N, M, 2) float64, the location (lat, lon) of each candidate.
        probs: (N, M) float64, the placer's probability of each candidate, non-increasing along M. For cell-based
            placers the candidates are distinct cells and ``probs`` their (refined) probability, part of a
            distribution over all cells; for point placers (``knn``) it is a distribution over gallery points.
            Each placer documents its rule (see :mod:`pigeon.model.placers`).
        refined: (N,) bool, whether the guess came from a gallery rather than a cell centroid.
        method: the placer's name (filled in by the geolocator).
        cell_probs: (N, C) the head's probability of every cell (filled in by the geolocator).
    """

    cells: np.ndarray
    latlon: np.ndarray
    probs: np.ndarray
    refined: np.ndarray
    method: str = ""
    cell_probs: np.ndarray | None = None


def place_by_centroid(candidates: np.ndarray, centroids: np.ndarray, probs: np.ndarray) -> Placement:
    """The head alone: candidates in the head's order, each at its cell's centroid with the head's probability."""
    cand_probs = np.take_along_axis(np.asarray(probs, np.float64), candidates, axis=1)
    return Placement(candidates, cell_guess(centroids, candidates), cand_probs, np.zeros(len(candidates), bool))


def build_predictions(placement: Placement, cells, aux: list[dict[str, Any]], top_k: int) -> list[Prediction]:
    """One :class:`Prediction` per row from a :class:`Placement` that carries the head's cell probabilities."""
    probs = placement.cell_probs
    table = cells.attributes  # names only: the shapes are not needed (nor loaded) for an answer
    head_guess = cell_guess(cells.centroids, probs.argmax(axis=1))
    preds = []
    for n in range(len(probs)):
        cands = [Candidate(int(c), float(q), float(lat), float(lon), cell_text(table, "country", c),
                           cell_text(table, "admin1", c), float(probs[n, c]))
                 for c, q, (lat, lon) in zip(placement.cells[n, :top_k], placement.probs[n, :top_k],
                                             placement.latlon[n, :top_k])]
        best = cands[0]
        preds.append(Prediction(best.lat, best.lon, best.cell_prob, best.cell, cands, placement.method,
                                bool(placement.refined[n]), float(head_guess[n, 0]), float(head_guess[n, 1]),
                                aux[n], probs[n], cells))
    return preds
