"""Which polygon holds each point, with a coastal tolerance: the one lookup of countries and admin-1 units."""

from __future__ import annotations

import numpy as np

from pigeon.geo import haversine_km

KM_PER_DEG = 111.32


def polygon_index(tree, lat: np.ndarray, lon: np.ndarray, max_km: float, point_key: np.ndarray | None = None,
                  geom_key: np.ndarray | None = None) -> np.ndarray:
    """Row of ``tree.geometries`` that contains each point, else the nearest one within ``max_km``, else -1.

    The nearest polygon is measured by great-circle distance to its nearest point, also across the
    antimeridian (where land is cut at lon = ±180). With keys, a point only matches polygons whose
    ``geom_key`` equals its ``point_key`` (e.g. the admin-1 units of the point's country); a point whose key is
    None matches nothing.

    Args:
        tree: a ``shapely.STRtree`` of (prepared) polygons in degrees.
        lat, lon: (n,) validated degrees.
        max_km: coastal tolerance in km; 0 disables it.
        point_key, geom_key: optional (n,) and (m,) labels.

    Returns:
        int64 array (n,).
    """
    import shapely

    geoms = tree.geometries
    out = np.full(lat.shape, -1, dtype=np.int64)
    pt_idx, geom_idx = tree.query(shapely.points(lon, lat))  # bounding boxes, then an exact test per polygon
    pt_idx, geom_idx = _same_key(pt_idx, geom_idx, point_key, geom_key)
    for g in np.unique(geom_idx):
        cand = pt_idx[geom_idx == g]
        out[cand[shapely.contains_xy(geoms[g], lon[cand], lat[cand])]] = g
    missing = np.flatnonzero(out < 0)
    if max_km <= 0 or missing.size == 0:
        return out
    # search radius in degrees of longitude, generous enough at the point's latitude
    radius_deg = max_km / (KM_PER_DEG * np.maximum(np.cos(np.radians(lat[missing])), 0.01))
    near_pt, near_geom, near_dx = [], [], []
    for dx in (0.0, 360.0, -360.0):
        shifted = lon[missing] + dx
        close = np.flatnonzero(np.abs(shifted) <= 180.0 + radius_deg)
        pt, geom = tree.query(shapely.points(shifted[close], lat[missing][close]), predicate="dwithin",
                              distance=radius_deg[close])
        pt, geom = _same_key(pt, geom, None if point_key is None else point_key[missing][close], geom_key)
        near_pt.append(close[pt])
        near_geom.append(geom)
        near_dx.append(np.full(len(pt), dx))
    near_pt, near_geom, near_dx = np.concatenate(near_pt), np.concatenate(near_geom), np.concatenate(near_dx)
    if near_pt.size == 0:
        return out
    start = shapely.points(lon[missing][near_pt] + near_dx, lat[missing][near_pt])
    ends = shapely.get_coordinates(shapely.get_point(shapely.shortest_line(start, geoms.take(near_geom)), 1))
    dist = haversine_km(lat[missing][near_pt], lon[missing][near_pt], ends[:, 1], ends[:, 0])
    order = np.lexsort((dist, near_pt))
    first = order[np.r_[True, near_pt[order][1:] != near_pt[order][:-1]]]
    ok = dist[first] <= max_km
    out[missing[near_pt[first][ok]]] = near_geom[first][ok]
    return out


def _same_key(pt: np.ndarray, geom: np.ndarray, point_key, geom_key) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs whose keys agree (all pairs without keys)."""
    if point_key is None:
        return pt, geom
    keep = np.asarray(point_key, dtype=object)[pt] == np.asarray(geom_key, dtype=object)[geom]
    return pt[keep], geom[keep]
