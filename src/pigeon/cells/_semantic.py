"""Semantic geocells from admin areas: one cell per populated area, fused up to ``min_size`` within a country.

Follows the reference (``geocell_creation.py``, ``cell_collection.py``): points take the id of the finest admin
area that covers them (the nearest area when none does); empty areas join the cell whose area centroid is nearest
in the same admin-1 unit (in the country when the unit holds no point), so cells tile the land of every country that
has training points; small cells are fused with neighbours of the same country until they reach ``min_size``,
neighbours of the same admin-1 first (see :func:`fuse_small`). Then each cell is made one connected region plus
islands (:func:`contiguous_cells`): an empty area attached to a cell it does not touch, or a fragment of an area,
goes to the cell it borders most.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from pigeon.cells._spatial import locate_points, unit_xyz_km
from pigeon.errors import InputError
from pigeon.geography._topology import (
    border_graph, circular_span, contiguous_groups, pairs_within, polygon_parts,
)

if TYPE_CHECKING:
    import geopandas as gpd

AREA_COLUMNS = ("country", "admin1", "admin2", "geometry")
#: Where a cell below ``min_size`` looks for a neighbour to fuse into, in order (the reference's tiers a-d).
FUSION_TIERS = ("(a) a small cell of its admin-1", "(b) a cell of its admin-1", "(c) a small cell of its country",
                "(d) a cell of its country")
#: Areas closer than this (degrees, ~1 km) are neighbours: it bridges slivers between GADM polygons.
TOUCH_DEG = 0.01


def check_areas(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Validate admin areas: the columns of ``pigeon.geography.admin_areas``, EPSG:4326, valid polygons."""
    missing = [c for c in AREA_COLUMNS if c not in areas.columns]
    if missing:
        raise InputError(f"admin areas lack column(s) {', '.join(missing)}; "
                         "pass pigeon.geography.admin_areas(level) or a table with country/admin1/admin2/geometry")
    if areas.crs is not None and not areas.crs.equals("EPSG:4326"):
        areas = areas.to_crs("EPSG:4326")
    # polygons only: make_valid may add lines and points
    parts, rows = polygon_parts(shapely.make_valid(np.asarray(areas.geometry.to_numpy(), dtype=object)))
    poly = pd.Series(parts).groupby(rows).agg(lambda s: shapely.union_all(s.to_numpy()))
    out = areas.iloc[poly.index].copy()
    out = out.set_geometry(np.asarray(poly.to_numpy(), dtype=object), crs="EPSG:4326")
    if len(out) == 0:
        raise InputError("the admin areas hold no polygons; check the boundary file")
    return out.reset_index(drop=True)


def initial_cells(point_area: np.ndarray, areas: gpd.GeoDataFrame) -> tuple[np.ndarray, int]:
    """One cell per area that holds training points; empty areas attached to the nearest one of the same admin-1
    unit, or of the same country when their admin-1 unit holds no training point.

    Args:
        point_area: (n,) area of each training point (see :func:`locate_points`).
        areas: the admin areas.

    Returns:
        ``area_cell`` (m,) int64: the cell (= index of its populated area) each area belongs to, -1 for
        areas of countries without training points; and how many empty areas went to another admin-1 unit.
    """
    geoms = areas.geometry.to_numpy()
    counts = np.bincount(point_area, minlength=len(areas))
    centre = shapely.point_on_surface(geoms)
    xyz = unit_xyz_km(shapely.get_y(centre), shapely.get_x(centre))
    admin1 = areas["admin1"].fillna("").to_numpy(dtype=object)
    area_cell = np.full(len(areas), -1, dtype=np.int64)
    across = 0
    for rows in _country_groups(areas).values():
        full, empty = rows[counts[rows] > 0], rows[counts[rows] == 0]
        if len(full) == 0:
            continue
        area_cell[full] = full
        for name in np.unique(admin1[empty]):
            lost = empty[admin1[empty] == name]
            home = full[admin1[full] == name]
            across += 0 if len(home) else len(lost)
            home = home if len(home) else full
            area_cell[lost] = home[cKDTree(xyz[home]).query(xyz[lost])[1]]
    return area_cell, across


def fuse_small(area_cell: np.ndarray, sizes: np.ndarray, areas: gpd.GeoDataFrame, min_size: int,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Fuse cells below ``min_size`` with neighbours of the same country (reference ``CellCollection.__fuse``).

    A random small cell (seeded) merges into the **largest** neighbour of the first non-empty tier:
    (a) small cells of the same admin-1, (b) any cell of the same admin-1, (c) small cells of the country,
    (d) any cell of the country; neighbours are cells whose areas touch (within :data:`TOUCH_DEG`), then,
    if none touches, cells within the cell's own bounding-box diagonal (the reference's shape scaled x2);
    both searches reach across the antimeridian.
    A cell with no neighbour at all (an isolated island) stays small. Fusion never crosses a border.

    Args:
        area_cell: (m,) cell of each area (-1: no cell), as from :func:`initial_cells`.
        sizes: (m,) training points per cell, indexed by cell id.
        areas: the admin areas (country, admin1).
        min_size: smallest cell size to reach.
        seed: random order of the fusions.

    Returns:
        ``area_cell`` after fusion, the ids of the cells left below ``min_size``, and how many fusions crossed an
        admin-1 border, by tier (:data:`FUSION_TIERS`; only the country-wide tiers (c) and (d) can cross one).
    """
    state = _Fusion(area_cell, sizes, areas, min_size)
    rng = np.random.default_rng(seed)
    pool = sorted(c for c in state.members if state.sizes[c] < min_size)
    stuck, crossed = [], dict.fromkeys(FUSION_TIERS[2:], 0)
    while pool:
        c = pool.pop(int(rng.integers(len(pool))))
        if state.find(c) != c or state.sizes[c] >= min_size:
            continue
        target, tier = state.pick(c, state.adj[c] or state.nearby(c))
        if target is None:
            stuck.append(c)
            continue
        if state.admin1[target] != state.admin1[c]:
            crossed[tier] += 1
        state.merge(c, target)
        if state.sizes[target] < min_size and target not in pool:
            pool.append(target)
    find, small = state.find, state.sizes < min_size
    fused = np.where(area_cell >= 0, [find(int(c)) if c >= 0 else -1 for c in area_cell], -1)
    return fused.astype(np.int64), np.asarray(sorted(find(c) for c in stuck if small[find(c)])), crossed


class _Fusion:
    """The cells being fused: their owners (union-find), sizes, member areas and neighbours."""

    def __init__(self, area_cell: np.ndarray, sizes: np.ndarray, areas: gpd.GeoDataFrame, min_size: int) -> None:
        self.area_cell, self.min_size = area_cell, min_size
        self.geoms = areas.geometry.to_numpy()
        self.country = areas["country"].fillna("").to_numpy(dtype=object)
        self.admin1 = areas["admin1"].fillna("").to_numpy(dtype=object)
        self.sizes = sizes.astype(np.int64).copy()
        self.owner = np.arange(len(areas))  # owner[c] == c for live cells
        self.members = {c: list(np.flatnonzero(area_cell == c)) for c in np.unique(area_cell[area_cell >= 0])}
        self.adj = _touching(area_cell, self.geoms, self.country)
        self.occupied = np.flatnonzero(area_cell >= 0)  # only areas holding points can be fusion targets
        self.tree = shapely.STRtree(self.geoms[self.occupied])
        # one vertex of each area: two areas are at most as far apart as their vertices (a cheap upper bound)
        first = shapely.get_exterior_ring(shapely.get_geometry(self.geoms, 0))
        self.vertex = shapely.get_coordinates(shapely.get_point(first, 0))

    def find(self, c: int) -> int:
        owner = self.owner
        while owner[c] != c:
            owner[c] = owner[owner[c]]
            c = owner[c]
        return c

    def pick(self, c: int, candidates: set) -> tuple[int | None, str]:
        """The largest candidate of the first tier that has one, and the tier."""
        sizes, admin1, small = self.sizes, self.admin1, self.min_size
        tiers = (lambda d: sizes[d] < small and admin1[d] == admin1[c], lambda d: admin1[d] == admin1[c],
                 lambda d: sizes[d] < small, lambda d: True)
        for name, tier in zip(FUSION_TIERS, tiers):
            found = [d for d in candidates if tier(d)]
            if found:
                return max(found, key=lambda d: (sizes[d], -d)), name
        return None, ""

    def nearby(self, c: int) -> set:
        """Cells of the same country within the cell's bounding-box diagonal (none touches it)."""
        geoms, members = self.geoms, self.members[c]
        bounds = shapely.bounds(geoms[members])
        xmin, xmax = circular_span(bounds[:, [0, 2]].ravel())  # the cell may straddle the antimeridian
        ymin, ymax = bounds[:, 1].min(), bounds[:, 3].max()
        reach = float(np.hypot(xmax - xmin, ymax - ymin))
        # envelope query first, then the exact (costly) distance test only for areas of the same country
        hits = np.unique(np.concatenate([self.tree.query(shapely.box(
            xmin - reach + dx, ymin - reach, xmax + reach + dx, ymax + reach)) for dx in (0.0, -360.0, 360.0)]))
        hits = self.occupied[hits]
        hits = hits[self.country[hits] == self.country[c]]
        sure = self._vertices_within(members, hits, reach)
        unsure = hits[~sure]
        hits = np.r_[hits[sure], unsure[np.unique(pairs_within(geoms[members], reach, other=geoms[unsure])[1])]]
        return {self.find(int(self.area_cell[h])) for h in hits} - {c}

    def _vertices_within(self, members: list, hits: np.ndarray, reach: float) -> np.ndarray:
        """(len(hits),) whether a vertex of a hit lies within ``reach`` of a vertex of a member, also across the
        antimeridian: then the two areas are within ``reach`` (what :func:`pairs_within` finds, without its exact
        distance between detailed outlines, which a sparse set's wide reach makes slow)."""
        if not len(hits):
            return np.zeros(0, dtype=bool)
        tree = cKDTree(self.vertex[members])
        gaps = [tree.query(self.vertex[hits] + (dx, 0.0))[0] for dx in (0.0, 360.0, -360.0)]
        return np.minimum.reduce(gaps) <= reach

    def merge(self, c: int, target: int) -> None:
        """Cell ``c`` joins ``target``: its size, areas and neighbours."""
        self.owner[c] = target
        self.sizes[target] += self.sizes[c]
        self.members[target].extend(self.members.pop(c))
        for d in self.adj.pop(c):
            self.adj[d].discard(c)
            if d != target:
                self.adj[d].add(target)
                self.adj[target].add(d)


def _country_groups(areas: gpd.GeoDataFrame) -> dict[str, np.ndarray]:
    """Row positions of the areas of each country."""
    country = areas["country"].fillna("").to_numpy(dtype=object)
    return pd.Series(country).groupby(country).indices


def _touching(area_cell: np.ndarray, geoms: np.ndarray, country: np.ndarray) -> dict[int, set]:
    """Neighbouring cells within the same country: cell id -> set of cell ids."""
    a, b, _ = pairs_within(geoms, TOUCH_DEG)
    ok = (area_cell[a] >= 0) & (area_cell[b] >= 0) & (country[a] == country[b])
    ca, cb = area_cell[a[ok]], area_cell[b[ok]]
    adj: dict[int, set] = {int(c): set() for c in np.unique(area_cell[area_cell >= 0])}
    for x, y in set(zip(ca.tolist(), cb.tolist())):
        if x != y:
            adj[x].add(y)
            adj[y].add(x)
    return adj


def contiguous_cells(piece_cell: np.ndarray, pieces: np.ndarray, piece_country: np.ndarray,
                     weight: np.ndarray) -> np.ndarray:
    """Cells made of one connected region plus islands: the new cell of each piece.

    Each cell keeps its region with the largest ``weight`` (training points); every other region that borders
    another cell of the same country goes, with its points, to the cell it shares the longest border with
    (:func:`pigeon.geography._topology.contiguous_groups`).

    Args:
        piece_cell: (p,) cell of each piece (a polygon part of an area or of a cell), -1 for none.
        pieces: (p,) the polygons.
        piece_country: (p,) country of each piece.
        weight: (p,) training points in each piece.

    Returns:
        (p,) the new cell of each piece.
    """
    idx = np.flatnonzero(piece_cell >= 0)
    i, j, length = border_graph(pieces[idx], piece_country[idx])
    out = piece_cell.copy()
    out[idx] = contiguous_groups(piece_cell[idx], i, j, length, weight[idx], shapely.area(pieces[idx]))
    return out


def contiguous_split_cells(geoms: list, members: list[np.ndarray], lat: np.ndarray, lon: np.ndarray,
                           country: np.ndarray) -> tuple[list, list[np.ndarray]]:
    """The same cleanup after the splits, across siblings and cells of different parents.

    A split only looks at the siblings of one parent; a part it leaves may still border a cell of another
    parent. Parts of multi-part cells are weighed by the training points inside them.

    Args:
        geoms, members: the cells' shapes and point indices.
        lat, lon: (n,) all training points.
        country: (k,) country of each cell.

    Returns:
        ``geoms`` and ``members``, with parts (and their points) moved.
    """
    parts, cell = polygon_parts(geoms)
    counts = np.bincount(cell, minlength=len(geoms))
    weight = np.asarray([len(m) for m in members], dtype=np.float64)[cell]
    multi = np.flatnonzero(counts[cell] > 1)
    if len(multi) == 0:
        return geoms, members
    idx = np.concatenate([members[c] for c in np.unique(cell[multi])])
    point_cell = np.repeat(np.unique(cell[multi]), [len(members[c]) for c in np.unique(cell[multi])])
    hit = locate_points(lat[idx], lon[idx], parts[multi], nearest=False)
    own = (hit >= 0) & (cell[multi][np.maximum(hit, 0)] == point_cell)  # inside a part of its own cell
    point_part = np.where(own, multi[np.maximum(hit, 0)], -1)
    weight[multi] = np.bincount(point_part[own], minlength=len(parts))[multi]
    owner = contiguous_cells(cell, parts, np.asarray(country, dtype=object)[cell], weight)
    moved = np.flatnonzero(owner != cell)
    if len(moved) == 0:
        return geoms, members
    geoms, members = list(geoms), list(members)
    for c in np.unique(np.r_[cell[moved], owner[moved]]):
        geoms[c] = shapely.union_all(parts[owner == c])
    leaving = own & np.isin(point_part, moved)
    new_cell = owner[point_part[leaving]]
    for c in np.unique(np.r_[point_cell[leaving], new_cell]):
        keep = members[c][~np.isin(members[c], idx[leaving])]
        members[c] = np.sort(np.concatenate([keep, idx[leaving][new_cell == c]]))
    return geoms, members
