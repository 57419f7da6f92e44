"""What a prediction is, and the one place that builds it from the pipeline's stages.

Stages: head (cell probabilities) -> candidates (the most probable cells) -> placer (the cell centroid, the
refiner or the nearest gallery image) -> posterior (calibrated cell masses, the guess for an objective, P(within r),
the credible region: :mod:`pigeon.model._answer`) -> :func:`build_predictions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pigeon.geo import RADII_KM

#: How a guess is placed: the top cell's centroid, retrieval refinement inside the top cells, or the location
#: of the nearest gallery image over the whole gallery (the retrieval baseline).
METHODS = ("cell", "refine", "knn")


@dataclass
class Candidate:
    """One candidate place of a prediction: a cell with its (calibrated) probability and a location in it."""

    cell: int
    prob: float
    lat: float
    lon: float
    country: str | None = None
    admin1: str | None = None


@dataclass
class Prediction:
    """Where one location (one image or several views) was taken.

    Attributes:
        lat, lon: the guess, degrees (``top_k[0]``'s location).
        confidence: the posterior probability of the guessed cell, in [0, 1] (calibrated when the model folder
            holds a calibration; the head's softmax otherwise).
        cell: the guessed cell.
        top_k: candidates: the guess first, then (``guess="mode"``) the placer's order, or (other objectives) the
            most probable other cells; each a cell with its posterior probability and a location (the centroid, the
            refined location, or the neighbours' locations for ``method="knn"``).
        method: how the guess was placed (see :data:`METHODS`).
        refined: whether the placer's guess came from retrieval (a gallery location) rather than a cell centroid.
        cell_lat, cell_lon: the head's own guess, the centroid of its most probable cell.
        aux: auxiliary predictions when the model has those heads: ``climate`` (Köppen class and prob),
            ``month`` (1..12 and prob) and regression values in their units, inside their physical ranges
            (``elevation_m`` ...).
        probs: (C,) float32 posterior probability of every cell (sums to 1).
        guess: the objective the guess was chosen for (:data:`pigeon.posterior.GUESSES`).
        p_within: posterior probability that the truth is within r km of the guess, ``{1: p, 25: p, ...}``; None
            when the model has no gallery to spread each cell's mass over.
        unseen: how unlike the validation photos the query is, in [0, 1] (the share of validation queries more
            similar to the training gallery); None without a gallery or a calibration.
        expected_km: the posterior's expected distance from the guess to the truth.
        credible: the smallest set of cells holding the asked-for mass (:class:`CredibleRegion`).
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
    p_within: dict[int, float] | None = None
    unseen: float | None = None
    expected_km: float = float("nan")
    credible: CredibleRegion | None = None
    _cells: Any = field(default=None, repr=False, compare=False)

    @property
    def country(self) -> str | None:
        return self.top_k[0].country if self.top_k else None

    @property
    def decimals(self) -> int:
        """Decimals of a coordinate that the posterior supports (about a tenth to one expected error)."""
        from pigeon.posterior import coordinate_decimals

        return coordinate_decimals(self.expected_km)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the full probability vector)."""
        return {"lat": self.lat, "lon": self.lon, "confidence": self.confidence, "cell": self.cell,
                "country": self.country, "method": self.method, "refined": self.refined, "guess": self.guess,
                "p_within": None if self.p_within is None else {f"{r}km": p for r, p in self.p_within.items()},
                "unseen": self.unseen, "expected_km": self.expected_km,
                "credible": None if self.credible is None else self.credible.to_dict(),
                "cell_lat": self.cell_lat, "cell_lon": self.cell_lon,
                "top_k": [vars(c) for c in self.top_k], "aux": self.aux}

    def credible_geometry(self):
        """The credible region as one shapely (Multi)Polygon: the union of its cells (cut at +-180 like them)."""
        if self.credible is None:
            return None
        return region_geometry(self._cells.table.geometry.to_numpy(), self.credible.cells)

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
        if region and self.credible is not None:
            geometry = self.credible_geometry()
            features.append({"type": "Feature", "geometry": mapping(geometry) if geometry is not None else None,
                             "properties": {"kind": "credible_region", **self.credible.to_dict(cells=False)}})
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
    """What the placer stage decides for N locations.

    Attributes:
        cells: (N, M) candidate cells, best first (rank 1 is the guess).
        latlon: (N, M, 2) location of each candidate.
        method: the placing method.
        refined: (N,) whether the guess came from the gallery.
    """

    cells: np.ndarray
    latlon: np.ndarray
    method: str
    refined: np.ndarray


def place_by_centroid(candidates: np.ndarray, centroids: np.ndarray) -> Placement:
    """The head alone: candidates in the head's order, each at its cell's centroid."""
    return Placement(candidates, cell_guess(centroids, candidates), "cell", np.zeros(len(candidates), bool))


def build_predictions(masses: np.ndarray, head_cells: np.ndarray, placement: Placement, answers, cells,
                      aux: list[dict[str, Any]]) -> list[Prediction]:
    """One :class:`Prediction` per row from the posterior's cell masses, the placer's decision and the posterior
    stage's :class:`~pigeon.model._answer.Answers`; ``head_cells`` (N,) are the head's own most probable cells."""
    country, admin1 = cell_texts(cells.table, "country"), cell_texts(cells.table, "admin1")
    head_guess = cell_guess(cells.centroids, head_cells)
    radii = RADII_KM
    preds = []
    for n in range(len(masses)):
        cands = [Candidate(int(c), float(masses[n, c]), float(lat), float(lon), country[c], admin1[c])
                 for c, (lat, lon) in zip(answers.cells[n], answers.latlon[n])]
        best = cands[0]
        region = answers.regions
        preds.append(Prediction(
            best.lat, best.lon, best.prob, best.cell, cands, placement.method, bool(placement.refined[n]),
            float(head_guess[n, 0]), float(head_guess[n, 1]), aux[n], masses[n], answers.guess,
            None if answers.p_within is None else dict(zip(radii, map(float, answers.p_within[n]))),
            None if answers.unseen is None else float(answers.unseen[n]), float(answers.expected_km[n]),
            CredibleRegion(region.q, float(region.mass[n]), float(region.area_km2[n]), region.cells[n]), cells))
    return preds
