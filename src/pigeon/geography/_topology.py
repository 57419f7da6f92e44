"""Shared borders, contiguous regions and the antimeridian, for polygons in (lon, lat) degrees.

Admin areas and geocells are unions of polygon *pieces*. :func:`border_graph` finds the pieces that share a
border (and how long it is), also across the antimeridian, where Natural Earth and GADM cut land at
lon = ±180; :func:`contiguous_groups` relabels pieces so that every group is one connected region plus
islands. :func:`unwrap_geometry` and :func:`wrap_geometry` move shapes into and out of a frame centred on a
longitude, so that planar steps (Voronoi, median cuts, bounding boxes) work on shapes that straddle ±180.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Pieces within this many degrees (~10 m) share a border: bridges rounding and small slivers, not straits.
BORDER_TOL_DEG = 1e-4
_WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)


def shift_x(geoms, dx):
    """``geoms`` (one geometry or an array) moved by ``dx`` degrees of longitude (scalar or one per geometry)."""
    single = isinstance(geoms, shapely.Geometry)
    arr = np.array(geoms, dtype=object, ndmin=1)
    dx = np.broadcast_to(np.asarray(dx, dtype=np.float64), arr.shape)
    out = arr.copy()
    for value in np.unique(dx[dx != 0]):
        sel = dx == value
        out[sel] = shapely.transform(arr[sel], lambda xy, v=value: xy + np.array([v, 0.0]))
    return out[0] if single else out


def unwrap_lon(lon, centre: float) -> np.ndarray:
    """Longitudes moved by multiples of 360 into ``[centre - 180, centre + 180)``."""
    return centre + (np.asarray(lon, dtype=np.float64) - centre + 180.0) % 360.0 - 180.0


def unwrap_geometry(geom, centre: float):
    """``geom`` with each polygon part moved by a multiple of 360 degrees to lie nearest ``centre``.

    Parts are moved whole (Natural Earth and GADM never let a part cross ±180), so a shape cut at the
    antimeridian becomes one connected shape around ``centre`` and can be processed in a plane.
    """
    parts = shapely.get_parts(geom)
    if len(parts) == 0:
        return geom
    mid = shapely.bounds(parts)[:, [0, 2]].mean(axis=1)
    moved = shift_x(parts, unwrap_lon(mid, centre) - mid)
    return shapely.union_all(moved) if len(parts) > 1 else moved[0]


def polygon_parts(geoms) -> tuple[np.ndarray, np.ndarray]:
    """The polygons in ``geoms`` (an array; overlay results may hold stray lines and points) and their index."""
    parts, index = shapely.get_parts(np.asarray(geoms, dtype=object), return_index=True)
    nested, inner = shapely.get_parts(parts, return_index=True)  # collections may hold multipolygons
    parts, index = nested, index[inner]
    keep = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)
    return parts[keep], index[keep]


def polygonal(geom):
    """The polygons of one geometry, as a Polygon, MultiPolygon or an empty Polygon."""
    parts, _ = polygon_parts([geom])
    return shapely.union_all(parts) if len(parts) > 1 else (parts[0] if len(parts) else shapely.Polygon())


def wrap_geometry(geom):
    """``geom`` cut at ±180 (and ±540) and moved back into ``[-180, 180]``: the inverse of :func:`unwrap_geometry`."""
    xmin, _, xmax, _ = shapely.bounds(geom)
    if shapely.is_empty(geom) or (xmin >= -180.0 and xmax <= 180.0):
        return geom
    ks = range(int(np.floor((xmin + 180.0) / 360.0)), int(np.floor((xmax + 180.0) / 360.0)) + 1)
    pieces, _ = polygon_parts([shapely.intersection(shift_x(geom, -360.0 * k), _WORLD) for k in ks])
    return shapely.union_all(pieces) if len(pieces) else shapely.Polygon()


def circular_span(lon) -> tuple[float, float]:
    """The shortest longitude interval ``(start, end)`` holding every ``lon``: the circle cut at its largest gap.

    ``end`` may exceed 180 (the interval then crosses the antimeridian); with the usual cut at ±180 the
    result is ``(min, max)``.
    """
    s = np.unique(np.asarray(lon, dtype=np.float64))
    gaps = np.append(np.diff(s), s[0] + 360.0 - s[-1])
    k = int(np.argmax(gaps))
    if k == len(s) - 1 or gaps[k] <= gaps[-1]:
        return float(s[0]), float(s[-1])
    return float(s[k + 1]), float(s[k] + 360.0)


def pairs_within(geoms: np.ndarray, distance: float, other: np.ndarray | None = None, wrap: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of geometries closer than ``distance`` degrees, also across the antimeridian.

    Args:
        geoms: (n,) polygons in degrees.
        distance: degrees.
        other: (m,) polygons to pair with; default ``geoms`` itself (then a pair appears once, never i == j).
        wrap: also pair across lon = ±180 (False for shapes in a local plane).

    Returns:
        ``i`` (into ``geoms``), ``j`` (into ``other``) and ``dx``: the shift (0 or 360) that brings
        ``other[j]`` next to ``geoms[i]``.
    """
    self_pairs = other is None
    other = geoms if other is None else other
    i, j = shapely.STRtree(other).query(geoms, predicate="dwithin", distance=distance)
    if self_pairs:
        keep = i < j
        i, j = i[keep], j[keep]
    dx = np.zeros(len(i))
    # across the line: the east edge of geoms[i] (x = 180) meets the west edge of other[j] (x = -180) moved by 360
    east = np.flatnonzero(shapely.bounds(geoms)[:, 2] >= 180.0 - distance)
    west = np.flatnonzero(shapely.bounds(other)[:, 0] <= -180.0 + distance)
    if wrap and len(east) and len(west):
        e, w = shapely.STRtree(shift_x(other[west], 360.0)).query(geoms[east], predicate="dwithin", distance=distance)
        e, w = east[e], west[w]
        keep = e != w if self_pairs else np.ones(len(e), dtype=bool)
        i, j, dx = np.r_[i, e[keep]], np.r_[j, w[keep]], np.r_[dx, np.full(int(keep.sum()), 360.0)]
    if wrap and not self_pairs:  # and the other way round (for pairs within one array, that is the same pair again)
        west = np.flatnonzero(shapely.bounds(geoms)[:, 0] <= -180.0 + distance)
        east = np.flatnonzero(shapely.bounds(other)[:, 2] >= 180.0 - distance)
        if len(east) and len(west):
            w, e = shapely.STRtree(shift_x(other[east], -360.0)).query(
                geoms[west], predicate="dwithin", distance=distance)
            i, j, dx = np.r_[i, west[w]], np.r_[j, east[e]], np.r_[dx, np.full(len(w), -360.0)]
    return i, j, dx


def border_graph(pieces: np.ndarray, scope: Sequence | None = None, tol: float = BORDER_TOL_DEG,
                 wrap: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces that share a border, with its length (degrees of ``i``'s outline within ``tol`` of ``j``).

    Args:
        pieces: (n,) polygons in degrees (one part each).
        scope: (n,) labels; only pieces with equal labels are paired (e.g. the country). Default: all.
        tol: how close two outlines must run to count as one border.
        wrap: also across lon = ±180 (False for shapes in a local plane).

    Returns:
        ``i``, ``j`` (i < j) and ``length`` (> 0) of each shared border.
    """
    pieces = np.asarray(pieces, dtype=object)
    i, j, dx = pairs_within(pieces, tol, wrap=wrap)
    if scope is not None:
        scope = np.asarray(scope, dtype=object)
        keep = scope[i] == scope[j]
        i, j, dx = i[keep], j[keep], dx[keep]
    if len(i) == 0:
        return i, j, np.zeros(0)
    near = shapely.buffer(pieces[np.unique(j)], tol, quad_segs=2)[np.searchsorted(np.unique(j), j)]
    near[dx != 0] = shift_x(near[dx != 0], dx[dx != 0])
    length = shapely.length(shapely.intersection(shapely.boundary(pieces[i]), near))
    keep = length > 2 * tol  # a shared corner is not a border
    return i[keep], j[keep], length[keep]


def contiguous_groups(groups: np.ndarray, i: np.ndarray, j: np.ndarray, length: np.ndarray,
                      weight: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Relabel pieces so that each group is one connected region plus islands.

    The main region of a group is its connected set of pieces with the largest ``weight`` (then
    ``tiebreak``). Every other region that shares a border with another group goes, whole, to the group it
    shares the longest border with, growing outward from the main regions; regions that touch no other
    group (islands) stay. Where loose regions only touch each other, the heaviest of them is settled first.

    Args:
        groups: (n,) group label (int >= 0) of each piece.
        i, j, length: shared borders, as from :func:`border_graph`.
        weight: (n,) e.g. training points per piece.
        tiebreak: (n,) second key, e.g. area.

    Returns:
        (n,) new group labels; every group keeps its main region, so none disappears.
    """
    groups = np.asarray(groups, dtype=np.int64)
    if len(groups) and groups.min() < 0:
        raise ValueError("group labels must be >= 0")
    n = len(groups)
    tiebreak = np.zeros(n) if tiebreak is None else np.asarray(tiebreak, dtype=np.float64)
    same = groups[i] == groups[j]
    n_comp, comp = _components(n, i[same], j[same])
    comp_group = np.zeros(n_comp, dtype=groups.dtype)
    comp_group[comp] = groups
    w = np.bincount(comp, weights=np.asarray(weight, dtype=np.float64), minlength=n_comp)
    t = np.bincount(comp, weights=tiebreak, minlength=n_comp)
    order = np.lexsort([-np.arange(n_comp), t, w])  # heaviest last; ties: the lowest component
    main = np.zeros(n_comp, dtype=bool)
    main[pd.Series(order).groupby(comp_group[order]).last().to_numpy()] = True
    # borders between regions of different groups, both directions
    ci, cj = comp[i[~same]], comp[j[~same]]
    ei, ej, el = np.r_[ci, cj], np.r_[cj, ci], np.r_[length[~same], length[~same]]
    settled = main | ~np.isin(np.arange(n_comp), ei)  # main regions and islands keep their group
    label = comp_group.copy()
    m = int(groups.max()) + 1 if n else 1
    while not settled.all():
        grow = ~settled[ei] & settled[ej]
        if not grow.any():  # loose regions touching only each other: in each such cluster, settle the heaviest
            both = ~settled[ei] & ~settled[ej]
            _, cluster = _components(n_comp, ei[both], ej[both])
            loose = np.flatnonzero(~settled)
            loose = loose[np.lexsort([-loose, t[loose], w[loose]])]
            settled[pd.Series(loose).groupby(cluster[loose]).last().to_numpy()] = True
            continue
        c, g = ei[grow], label[ej[grow]]
        key, inverse = np.unique(c * m + g, return_inverse=True)
        total = np.bincount(inverse, weights=el[grow])
        kc, kg = key // m, key % m
        best = np.lexsort([kg, -total, kc])  # per region: the longest border, then the lowest group
        best = best[np.r_[True, kc[best][1:] != kc[best][:-1]]]
        label[kc[best]] = kg[best]
        settled[kc[best]] = True
    return label[comp]


def regions(geoms: np.ndarray, scope: Sequence | None = None, tol: float = BORDER_TOL_DEG
            ) -> pd.DataFrame:
    """The connected regions of each shape (its parts joined across shared borders and the antimeridian).

    Args:
        geoms: (k,) shapes in degrees, e.g. cells.
        scope: (k,) labels; a region only counts as touching shapes of the same scope. Default: all.

    Returns:
        One row per region: ``shape`` (index into ``geoms``), ``region`` (0.. within the shape, by decreasing
        area), ``geometry``, ``area`` (square degrees), ``touches_other`` (it shares a border with another shape).
    """
    parts, shape = polygon_parts(geoms)
    part_scope = None if scope is None else np.asarray(scope, dtype=object)[shape]
    i, j, length = border_graph(parts, part_scope, tol)
    same = shape[i] == shape[j]
    n = len(parts)
    _, comp = _components(n, i[same], j[same])
    touches = np.zeros(n, dtype=bool)
    touches[np.r_[i[~same], j[~same]]] = True
    table = pd.DataFrame({"shape": shape, "comp": comp, "area": shapely.area(parts), "touches": touches})
    out = table.groupby("comp", sort=False).agg(shape=("shape", "first"), area=("area", "sum"),
                                                 touches_other=("touches", "any"))
    out["geometry"] = pd.Series(parts).groupby(comp).agg(lambda s: shapely.union_all(s.to_numpy()))
    out = out.sort_values(["shape", "area"], ascending=[True, False], kind="stable").reset_index(drop=True)
    out.insert(1, "region", out.groupby("shape").cumcount())
    return out


def _components(n: int, i: np.ndarray, j: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the graph on ``n`` nodes with edges ``(i, j)``: their count and each node's."""
    return connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
