"""The posterior of a batch of queries over the globe and the decisions taken from it, batched and bounded.

Per query, the most probable cells (up to :attr:`PosteriorConfig.support_mass` of the mass, at most
:attr:`PosteriorConfig.shape_cells`) spread their mass over their kept training locations, each a uniform disc; every
other cell is one disc of its own area at its centroid. Guesses are searched among candidates (the shaped cells'
training locations, the centroids of the shaped cells and of the best cells under a coarse centroid-to-centroid
objective, and the placer's own points): exactly against the shaped support, and against the other cells through
their centroids. Everything is matrix products over (candidates x support) on chunks of queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pigeon.geo import RADII_KM, latlon_to_xyz
from pigeon.posterior._config import PosteriorConfig
from pigeon.posterior._discs import disc_share, km_between, objective_of
from pigeon.posterior._support import CellSupport

#: Elements of the largest (candidates x support) block one chunk of queries makes.
CHUNK_ELEMENTS = 1 << 22


@dataclass
class CredibleRegions:
    """The smallest sets of cells holding at least ``q`` of each query's mass.

    Attributes:
        q: the mass asked for.
        cells: per query, its cells, most probable first.
        mass: (B,) the mass they hold (>= q).
        area_km2: (B,) their total area.
    """

    q: float
    cells: list[np.ndarray]
    mass: np.ndarray
    area_km2: np.ndarray


def coordinate_decimals(expected_km: float) -> int:
    """Decimals of a coordinate whose expected error is ``expected_km``: a last digit of about a tenth to one
    expected error (0 decimals = 111 km), between 0 and 5."""
    if not np.isfinite(expected_km) or expected_km <= 0:
        return 5
    return int(np.clip(np.ceil(np.log10(111.0 / expected_km)), 0, 5))


def _rows(n: int, per_row: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(per_row, 1))
    for lo in range(0, n, step):
        yield slice(lo, min(n, lo + step))


def _top(values: np.ndarray, k: int, largest: bool = True) -> np.ndarray:
    """(B, k) columns of the k largest (or smallest) values of each row, best first (ties: lower index)."""
    k = min(k, values.shape[1])
    key = -values if largest else values
    part = np.argpartition(key, k - 1, axis=1)[:, :k] if k < values.shape[1] else np.tile(
        np.arange(values.shape[1]), (len(values), 1))
    order = np.lexsort((part, np.take_along_axis(key, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


class Posterior:
    """Calibrated cell masses of B queries with the within-cell shape of :class:`CellSupport`.

    Args:
        masses: (B, C) cell probabilities (rows sum to 1).
        support: the model's :class:`CellSupport`.
        config: the bounds (:class:`PosteriorConfig`).
    """

    def __init__(self, masses: np.ndarray, support: CellSupport, config: PosteriorConfig | None = None) -> None:
        self.masses = np.asarray(masses)
        self.support = support
        self.config = config or PosteriorConfig()
        self.cells = _top(self.masses, self.config.shape_cells)
        top = np.take_along_axis(self.masses, self.cells, axis=1).astype(np.float64)
        before = np.cumsum(top, axis=1) - top
        self.shaped = before < self.config.support_mass
        self.shaped[:, 0] = True

    def __len__(self) -> int:
        return len(self.masses)

    # ------------------------------------------------------------------------------------------ the support
    def _parts(self, sl: slice):
        """Of a chunk of queries: masses (b, C), shaped support points (b, S, 3) with weights (b, S) and radii,
        and the masses of the cells outside the shape (b, C)."""
        sup = self.support
        m = self.masses[sl].astype(np.float64)
        cells, shaped = self.cells[sl], self.shaped[sl]
        rows = np.arange(len(m))[:, None]
        cell_mass = m[rows, cells] * shaped
        b, n_shape = cells.shape
        w = (sup.weights[cells] * cell_mass[..., None]).reshape(b, -1)
        xyz = sup.point_xyz[cells].reshape(b, -1, 3)
        radius = np.repeat(sup.point_radius_km[cells], sup.weights.shape[1], axis=1)
        rest = m.copy()
        rest[rows, cells] -= cell_mass
        return m, xyz, w, radius, np.maximum(rest, 0.0)

    # --------------------------------------------------------------------------------------- probabilities
    def p_within(self, latlon: np.ndarray, radii=RADII_KM) -> np.ndarray:
        """(B, R) posterior probability that the truth lies within each radius (km) of each query's point."""
        self.support.require_gallery()
        latlon = np.asarray(latlon, np.float64).reshape(-1, 2)
        radii = np.asarray(radii, np.float64)
        out = np.zeros((len(self), len(radii)))
        for sl in _rows(len(self), 4 * (self.support.weights.shape[1] * self.config.shape_cells + len(self.support))):
            _, xyz, w, radius, rest = self._parts(sl)
            g = latlon_to_xyz(latlon[sl, 0], latlon[sl, 1])[:, None, :]
            shape = _within(km_between(g, xyz)[:, 0], radius, w, radii)
            out[sl] = shape + _within(km_between(g, self.support.centroid_xyz)[:, 0],
                                      self.support.cell_radius_km[None, :], rest, radii)
        return np.clip(out, 0.0, 1.0)

    def expected(self, latlon: np.ndarray, objective: str = "distance") -> np.ndarray:
        """(B,) expected great-circle km (or GeoGuessr score) of each query's point, the support as points."""
        latlon = np.asarray(latlon, np.float64).reshape(-1, 2)
        out = np.zeros(len(self))
        for sl in _rows(len(self), len(self.support) * 4):
            _, xyz, w, _, rest = self._parts(sl)
            g = latlon_to_xyz(latlon[sl, 0], latlon[sl, 1])[:, None, :]
            out[sl] = ((objective_of(km_between(g, xyz)[:, 0], objective) * w).sum(1)
                       + (objective_of(km_between(g, self.support.centroid_xyz)[:, 0], objective) * rest).sum(1))
        return out

    def credible(self, q: float) -> CredibleRegions:
        """The smallest set of cells holding at least ``q`` of each query's mass (most probable cells first)."""
        cells, mass, area = [], np.zeros(len(self)), np.zeros(len(self))
        n_cells = self.masses.shape[1]
        for sl in _rows(len(self), n_cells * 4):
            m = self.masses[sl].astype(np.float64)
            order = np.argsort(-m, axis=1, kind="stable")
            cum = np.cumsum(np.take_along_axis(m, order, axis=1), axis=1)
            k = np.minimum((cum < q - 1e-12).sum(1) + 1, n_cells)
            rows = np.arange(len(m))
            mass[sl] = cum[rows, k - 1]
            area[sl] = np.cumsum(self.support.areas_km2[order], axis=1)[rows, k - 1]
            cells += np.split(order[np.arange(n_cells)[None, :] < k[:, None]], np.cumsum(k)[:-1])
        return CredibleRegions(float(q), cells, mass, area)

    # -------------------------------------------------------------------------------------------- guesses
    def guess(self, objective: str, candidates: np.ndarray | None = None,
              candidate_cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The candidate that minimises the expected distance (``"distance"``) or maximises the expected GeoGuessr
        score (``"score"``) of each query.

        Args:
            objective: ``"distance"`` or ``"score"``.
            candidates: (B, k, 2) extra candidate points (the placer's), with their cells ``candidate_cells`` (B, k).

        Returns:
            ``(latlon (B, 2), cell (B,))``: the chosen point and the cell it stands for.
        """
        n, cfg = len(self), self.config
        if candidates is None:
            candidates, candidate_cells = np.zeros((n, 0, 2)), np.zeros((n, 0), np.int64)
        candidates = np.asarray(candidates, np.float64).reshape(n, -1, 2)
        candidate_cells = np.asarray(candidate_cells, np.int64).reshape(n, -1)
        latlon, cell = np.zeros((n, 2)), np.zeros(n, np.int64)
        points = self.support.weights.shape[1]
        columns = cfg.shape_cells + cfg.anchors + candidates.shape[1]
        per_row = 6 * cfg.shape_cells * points * (2 * cfg.point_cells * points + columns)
        per_row += len(self.support) * (2 if self._coarse_ok else 6 * columns)
        for sl in _rows(n, per_row):
            latlon[sl], cell[sl] = self._search(sl, objective, candidates[sl], candidate_cells[sl])
        return latlon, cell

    def _search(self, sl: slice, objective: str, extra: np.ndarray, extra_cells: np.ndarray):
        sup, cfg = self.support, self.config
        m, s_xyz, w, _, rest = self._parts(sl)
        cells = self.cells[sl]
        coarse = self._coarse(m, objective)
        anchors = _top(coarse, cfg.anchors, largest=objective == "score") if coarse is not None else cells
        columns = np.concatenate([cells, anchors, extra_cells], axis=1)  # the cell each candidate stands for
        outside = self._outside(m, rest, coarse, columns, cells, objective)  # (b, columns)
        with_points = np.concatenate([np.arange(min(cfg.point_cells, cells.shape[1])),
                                      cells.shape[1] + np.arange(min(cfg.point_cells, anchors.shape[1]))])
        b, n_points = len(m), sup.weights.shape[1]
        g_latlon = np.concatenate([sup.points[columns[:, with_points]].reshape(b, -1, 2), sup.centroids[columns],
                                   extra], axis=1)
        g_col = np.concatenate([np.repeat(with_points, n_points), np.arange(columns.shape[1]),
                                cells.shape[1] + anchors.shape[1] + np.arange(extra.shape[1])])
        valid = np.concatenate([sup.weights[columns[:, with_points]].reshape(b, -1) > 0,
                                np.ones((b, columns.shape[1] + extra.shape[1]), bool)], axis=1)
        g_xyz = latlon_to_xyz(g_latlon[..., 0], g_latlon[..., 1])
        value = np.einsum("bgs,bs->bg", objective_of(km_between(g_xyz, s_xyz), objective), w.astype(np.float32))
        value = value + outside[:, g_col]
        sign = 1.0 if objective == "distance" else -1.0
        best = np.argmin(np.where(valid, sign * value, np.inf), axis=1)
        rows = np.arange(b)
        return g_latlon[rows, best], columns[rows, g_col[best]]

    @property
    def _coarse_ok(self) -> bool:
        return len(self.support) <= self.config.coarse_max_cells

    def _matrix(self, objective: str) -> np.ndarray:
        return self.support.cell_km if objective == "distance" else self.support.cell_score

    def _coarse(self, m: np.ndarray, objective: str) -> np.ndarray | None:
        """(b, C) the objective of every centroid with every cell at its centroid (None: too many cells)."""
        if not self._coarse_ok:
            return None
        return m.astype(np.float32) @ self._matrix(objective)

    def _outside(self, m, rest, coarse, columns, cells, objective) -> np.ndarray:
        """(b, columns) the objective over the cells outside the shape, for a guess at each column's centroid."""
        sup = self.support
        if coarse is not None:
            rows = np.arange(len(m))[:, None]
            shaped_mass = m[rows, cells] - rest[rows, cells]
            pairs = self._matrix(objective)[columns[:, :, None], cells[:, None, :]].astype(np.float64)
            return np.take_along_axis(coarse, columns, axis=1) - np.einsum("bgl,bl->bg", pairs, shaped_mass)
        d = km_between(sup.centroid_xyz[columns], sup.centroid_xyz)
        return np.einsum("bgc,bc->bg", objective_of(d, objective), rest.astype(np.float32))


def _within(d: np.ndarray, radius: np.ndarray, weight: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(b, R) mass within each radius of the discs (b, S) at distances ``d``; only discs that reach the largest
    radius are looked at."""
    radius = np.broadcast_to(radius, d.shape)
    near = (d < radii.max() + radius) & (weight > 0)
    row, col = np.nonzero(near)
    dn, an, wn = d[row, col], radius[row, col], weight[row, col]
    out = np.zeros((len(d), len(radii)))
    for j, r in enumerate(radii):
        out[:, j] = np.bincount(row, weights=disc_share(dn, r, an) * wn, minlength=len(d))
    return out
