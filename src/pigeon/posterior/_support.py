"""Where each cell's probability mass lies: its training locations (a bounded, deterministic sample), each a
uniform disc sharing the cell's area, or the cell's centroid alone when the model has no gallery."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pigeon.errors import InputError
from pigeon.geo import GEOGUESSR_DECAY_KM, latlon_to_xyz, pairwise_haversine_km

#: Smallest disc radius (km): a point never claims certainty finer than this.
MIN_RADIUS_KM = 0.5
NO_GALLERY = ("P(within r) needs the training locations inside each cell and this model has no gallery; build "
              "one with 'pigeon refine build MODEL --manifest TRAIN --embeddings EMB'")


def stratified_sample(latlon: np.ndarray, cell: np.ndarray, n_cells: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``m`` locations of every cell, evenly spaced along a Z-order curve (so dense areas keep their share).

    Returns:
        ``(rows, counts)``: positions into ``latlon`` grouped by cell, and how many each cell kept (C,).
    """
    q = np.clip(((latlon + [90.0, 180.0]) / [180.0, 360.0] * 65535).astype(np.uint64), 0, 65535)
    key = np.zeros(len(latlon), np.uint64)
    for bit in range(16):  # interleave the bits of latitude and longitude (Morton order)
        key |= ((q[:, 0] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit + 1)
        key |= ((q[:, 1] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit)
    order = np.lexsort((key, cell))
    n = np.bincount(cell, minlength=n_cells)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    kept = np.minimum(n, m)
    owner = np.repeat(np.arange(n_cells), kept)
    j = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    pick = start[owner] + ((j + 0.5) * n[owner] / kept[owner]).astype(np.int64)
    return order[pick], kept


@dataclass
class CellSupport:
    """The shape of the posterior inside each of C cells, padded to M points a cell.

    Attributes:
        centroids: (C, 2) cell centroids (lat, lon).
        points: (C, M, 2) the kept training locations of each cell (padding: the centroid).
        weights: (C, M) each point's share of its cell's mass (a row sums to 1; padding 0).
        kept: (C,) how many points each cell kept (at least 1: its centroid).
        prior: (C,) share of training locations in each cell (what an uninformed posterior is).
        has_gallery: whether the points are training locations (else every cell is its centroid).
        areas: (C,) cell areas (km², equal-area), or a function giving them on first use (they need the shapes).
    """

    centroids: np.ndarray
    points: np.ndarray
    weights: np.ndarray
    kept: np.ndarray
    prior: np.ndarray
    has_gallery: bool
    areas: np.ndarray | Callable[[], np.ndarray]

    @classmethod
    def build(cls, centroids: np.ndarray, areas_km2: np.ndarray | Callable[[], np.ndarray],
              gallery_latlon: np.ndarray | None = None, gallery_cell: np.ndarray | None = None,
              points_per_cell: int = 16, prior: np.ndarray | None = None) -> CellSupport:
        """From the cells and, when there is one, the gallery (training locations and their cells).

        A cell without gallery locations keeps its centroid as its one point; the prior is the gallery's share per
        cell, else ``prior`` (e.g. the cells' training counts), else uniform. ``areas_km2`` may be a function,
        called only when P(within r) or a region's area is asked for.
        """
        centroids = np.asarray(centroids, np.float64).reshape(-1, 2)
        n_cells = len(centroids)
        points = np.repeat(centroids[:, None, :], points_per_cell, axis=1)
        weights = np.zeros((n_cells, points_per_cell))
        weights[:, 0] = 1.0
        kept = np.ones(n_cells, np.int64)
        counts = None
        has_gallery = gallery_latlon is not None and len(gallery_latlon) > 0
        if has_gallery:
            latlon = np.asarray(gallery_latlon, np.float64).reshape(-1, 2)
            cell = np.asarray(gallery_cell, np.int64).ravel()
            if len(cell) != len(latlon) or cell.min() < 0 or cell.max() >= n_cells:
                raise InputError(f"gallery cells must be {len(latlon)} values in [0, {n_cells})")
            rows, got = stratified_sample(latlon, cell, n_cells, points_per_cell)
            slot = np.arange(got.sum()) - np.repeat(np.cumsum(got) - got, got)
            owner = np.repeat(np.arange(n_cells), got)
            weights[got > 0] = 0.0
            points[owner, slot] = latlon[rows]
            weights[owner, slot] = 1.0 / got[owner]
            kept = np.maximum(got, 1)
            counts = np.bincount(cell, minlength=n_cells).astype(np.float64)
        if counts is None and prior is not None:
            counts = np.maximum(np.asarray(prior, np.float64), 0.0)
        if counts is None or counts.sum() <= 0:
            counts = np.ones(n_cells)
        return cls(centroids, points, weights, kept, counts / counts.sum(), has_gallery, areas_km2)

    @functools.cached_property
    def areas_km2(self) -> np.ndarray:
        """(C,) cell areas on an equal-area projection (computed on first use when given as a function)."""
        areas = self.areas() if callable(self.areas) else self.areas
        return np.maximum(np.asarray(areas, np.float64), 0.0)

    @functools.cached_property
    def point_radius_km(self) -> np.ndarray:
        """(C,) radius of each point's disc: the cell's area shared among its points."""
        return np.maximum(np.sqrt(self.areas_km2 / (np.pi * self.kept)), MIN_RADIUS_KM)

    @functools.cached_property
    def cell_radius_km(self) -> np.ndarray:
        """(C,) radius of a disc with the cell's area (a cell outside a query's shaped cells)."""
        return np.maximum(np.sqrt(self.areas_km2 / np.pi), MIN_RADIUS_KM)

    def __len__(self) -> int:
        return len(self.centroids)

    def require_gallery(self) -> None:
        """Raise the one-line error that names the fix when there are no training locations to spread mass on."""
        if not self.has_gallery:
            raise InputError(NO_GALLERY)

    @functools.cached_property
    def centroid_xyz(self) -> np.ndarray:
        return latlon_to_xyz(self.centroids[:, 0], self.centroids[:, 1])

    @functools.cached_property
    def point_xyz(self) -> np.ndarray:
        return latlon_to_xyz(self.points[..., 0], self.points[..., 1])

    @functools.cached_property
    def cell_km(self) -> np.ndarray:
        """(C, C) float32 great-circle km between cell centroids (made once, on first use)."""
        return pairwise_haversine_km(self.centroids, self.centroids).astype(np.float32)

    @functools.cached_property
    def cell_score(self) -> np.ndarray:
        """(C, C) float32 GeoGuessr score of guessing one centroid when the truth is another."""
        return (5000.0 * np.exp(-self.cell_km / GEOGUESSR_DECAY_KM)).astype(np.float32)
