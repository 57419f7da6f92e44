"""What a prediction is, and the one place that builds it from the pipeline's stages.

Stages: head (cell probabilities) -> a placer of :mod:`pigeon.model.placers` (the cell centroid, the refiner, the
nearest gallery image...) -> :class:`Placement` (candidates with locations and probabilities) -> the posterior
(calibrated cell masses, the guess for an objective, P(within r), the credible region: :mod:`pigeon.model._answer`)
-> :func:`build_predictions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pigeon.geo import RADII_KM


@dataclass
class Candidate:
    """One candidate place of a prediction.

    Attributes:
        cell: the geocell the candidate lies in.
        prob: the probability the candidates are ranked by: with ``guess="mode"`` the placer's
            (:attr:`Placement.probs`); with another objective the posterior probability of the candidate's cell
            (the guess first, then the most probable other cells).
        lat, lon: the candidate's location, degrees.
        country, admin1: the cell's country (ISO alpha-2) and first-level region.
        cell_prob: the posterior probability of :attr:`cell`: the calibrated head's when the model folder holds a
            calibration (``calibration.json``), the head's softmax otherwise.
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
        confidence: the posterior probability of the guessed cell, in [0, 1] (``top_k[0].cell_prob``; calibrated
            when the model folder holds a calibration).
        cell: the guessed cell.
        top_k: candidates, the guess first, each with a location, the probability they are ranked by (``prob``) and
            the posterior probability of its cell (``cell_prob``).
        method: how the placer placed its candidates (a name of :data:`pigeon.model.placers.METHODS`).
        refined: whether the placer's guess came from retrieval (a gallery location) rather than a cell centroid.
        cell_lat, cell_lon: the head's own guess, the centroid of its most probable cell.
        aux: auxiliary predictions when the model has those heads: ``climate`` (Köppen class, its name and prob),
            ``month`` (1..12 and prob) and regression values in their units, inside their physical ranges
            (``elevation_m`` ...).
        probs: (C,) float32 posterior probability of every cell (sums to 1).
        guess: the objective the guess was chosen for (:data:`pigeon.posterior.GUESSES`).
        unseen: how unlike the validation photos the query is, in [0, 1] (the share of validation queries more
            similar to the training gallery); None without a gallery or a calibration.
        expected_km: (property) the posterior's expected distance from the guess to the truth.
        p_within: (property) posterior probability that the truth is within r km of the guess, ``{1: p, 25: p,
            ...}``; None when the model has no gallery to spread each cell's mass over.
        credible: (property) the smallest set of cells holding the asked-for mass (:class:`CredibleRegion`).

    ``expected_km``, ``p_within`` and ``credible`` are computed for the whole batch the first time one prediction's
    is read.
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
    guess: str = "mode"
    unseen: float | None = None
    _cells: Any = field(default=None, repr=False, compare=False)
    _answers: Any = field(default=None, repr=False, compare=False)
    _row: int = field(default=0, repr=False, compare=False)
    _without_p: bool = field(default=False, repr=False, compare=False)

    @property
    def country(self) -> str | None:
        return self.top_k[0].country if self.top_k else None

    @property
    def expected_km(self) -> float:
        return float("nan") if self._answers is None else float(self._answers.expected_km[self._row])

    @property
    def p_within(self) -> dict[int, float] | None:
        if self._answers is None or self._without_p:
            return None
        values = self._answers.p_within
        return None if values is None else dict(zip(RADII_KM, map(float, values[self._row])))

    @p_within.setter
    def p_within(self, value: None) -> None:
        if value is not None:
            raise ValueError("p_within is computed from the posterior; it can only be dropped (None)")
        self._without_p = True

    @property
    def credible(self) -> CredibleRegion | None:
        if self._answers is None:
            return None
        regions = self._answers.regions
        return CredibleRegion(regions.q, float(regions.mass[self._row]), float(regions.area_km2[self._row]),
                              regions.cells[self._row])

    @property
    def decimals(self) -> int:
        """Decimals of a coordinate that the posterior supports (about a tenth to one expected error)."""
        from pigeon.posterior import coordinate_decimals

        return coordinate_decimals(self.expected_km)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the full probability vector)."""
        p_within, credible = self.p_within, self.credible
        return {"lat": self.lat, "lon": self.lon, "confidence": self.confidence, "cell": self.cell,
                "country": self.country, "method": self.method, "refined": self.refined, "guess": self.guess,
                "p_within": None if p_within is None else {f"{r}km": p for r, p in p_within.items()},
                "unseen": self.unseen, "expected_km": self.expected_km,
                "credible": None if credible is None else credible.to_dict(),
                "cell_lat": self.cell_lat, "cell_lon": self.cell_lon,
                "top_k": [vars(c) for c in self.top_k], "aux": self.aux}

    def credible_geometry(self):
        """The credible region as one shapely (Multi)Polygon: the union of its cells (cut at +-180 like them)."""
        credible = self.credible
        if credible is None:
            return None
        return region_geometry(self._cells.table.geometry.to_numpy(), credible.cells)

    def to_geojson(self, region: bool = False) -> dict[str, Any]:
        """A GeoJSON FeatureCollection: every cell polygon with its probability (the probability map); with
        ``region`` the credible region too, as a last feature with ``properties.kind == "credible_region"``."""
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
        credible = self.credible if region else None
        if credible is not None:
            geometry = self.credible_geometry()
            features.append({"type": "Feature", "geometry": mapping(geometry) if geometry is not None else None,
                             "properties": {"kind": "credible_region", **credible.to_dict(cells=False)}})
        summary = {k: v for k, v in self.to_dict().items() if k not in ("top_k", "aux", "credible")}
        return {"type": "FeatureCollection", "features": features, "properties": summary}


@dataclass
class CredibleRegion:
    """The smallest set of cells holding at least ``q`` of a prediction's posterior mass.

    Attributes:
        q: the mass asked for; mass: the mass the cells hold (>= q); area_km2: their area (equal-area projection);
        cells: the cells, most probable first.
    """

    q: float
    mass: float
    area_km2: float
    cells: np.ndarray

    def to_dict(self, cells: bool = True) -> dict[str, Any]:
        out = {"q": self.q, "mass": self.mass, "area_km2": self.area_km2, "n_cells": int(len(self.cells))}
        return {**out, "cells": [int(c) for c in self.cells]} if cells else out


def region_geometry(geometries: np.ndarray, cells: np.ndarray):
    """The union of some cells' polygons as one Polygon or MultiPolygon (None when none has a shape); the lines or
    points that simplified outlines can leave are dropped."""
    import shapely
    from shapely.geometry import MultiPolygon

    parts = [g for g in np.asarray(geometries, dtype=object)[np.asarray(cells, np.int64)] if g is not None]
    if not parts:
        return None
    union = shapely.union_all(parts)
    if union.geom_type in ("Polygon", "MultiPolygon"):
        return union
    polygons = [p for p in shapely.get_parts(shapely.get_parts(union)) if p.geom_type == "Polygon"]
    if not polygons:
        return None
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def cell_text(table, column: str, i: int) -> str | None:
    if column not in table.columns:
        return None
    value = table[column].iat[i]
    return value if isinstance(value, str) and value else None


def cell_texts(table, column: str) -> list[str | None]:
    """:func:`cell_text` of every cell, read once."""
    if column not in table.columns:
        return [None] * len(table)
    return [v if isinstance(v, str) and v else None for v in table[column].tolist()]


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
        retrieval: ``(candidates (N, K), scores (N, K))``: cells a placer scored against the retrieval gallery and
            each one's best-cluster similarity to the query (-inf: no cluster), so that the posterior (the unseen
            score, the sharpening) need not search again; None when the placer did not.
    """

    cells: np.ndarray
    latlon: np.ndarray
    probs: np.ndarray
    refined: np.ndarray
    method: str = ""
    cell_probs: np.ndarray | None = None
    retrieval: tuple[np.ndarray, np.ndarray] | None = None


def place_by_centroid(candidates: np.ndarray, centroids: np.ndarray, probs: np.ndarray) -> Placement:
    """The head alone: candidates in the head's order, each at its cell's centroid with the head's probability."""
    cand_probs = np.take_along_axis(np.asarray(probs, np.float64), candidates, axis=1)
    return Placement(candidates, cell_guess(centroids, candidates), cand_probs, np.zeros(len(candidates), bool))


def build_predictions(placement: Placement, answers, cells, aux: list[dict[str, Any]]) -> list[Prediction]:
    """One :class:`Prediction` per row from a :class:`Placement` (with the head's cell probabilities) and the
    posterior stage's :class:`~pigeon.model._answer.Answers` (the candidates shown and the posterior's masses)."""
    table = cells.attributes  # names only: the shapes are not needed (nor loaded) for an answer
    country, admin1 = cell_texts(table, "country"), cell_texts(table, "admin1")
    head_guess = cell_guess(cells.centroids, placement.cell_probs.argmax(axis=1))
    masses = answers.masses
    preds = []
    for n in range(len(masses)):
        cands = [Candidate(int(c), float(q), float(lat), float(lon), country[c], admin1[c], float(masses[n, c]))
                 for c, q, (lat, lon) in zip(answers.cells[n], answers.probs[n], answers.latlon[n])]
        best = cands[0]
        preds.append(Prediction(
            best.lat, best.lon, best.cell_prob, best.cell, cands, placement.method, bool(placement.refined[n]),
            float(head_guess[n, 0]), float(head_guess[n, 1]), aux[n], masses[n], answers.guess,
            None if answers.unseen is None else float(answers.unseen[n]), cells, answers, n))
    return preds
