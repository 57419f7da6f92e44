"""Vectorised spatial helpers shared by the cell builders: point-in-polygon and local planes."""

from __future__ import annotations

import numpy as np
import shapely

from pigeon.geo import EARTH_RADIUS_KM, latlon_to_xyz


def locate_points(lat: np.ndarray, lon: np.ndarray, geoms: np.ndarray, nearest: bool = True) -> np.ndarray:
    """Index of the polygon that covers each point (the lowest index on shared borders).

    Every polygon is prepared once and tested against the points in its bounding box (an STRtree of
    the points), which is much faster than testing each point against unprepared polygons.

    Args:
        lat, lon: (n,) degrees.
        geoms: (m,) shapely polygons in (lon, lat) degrees.
        nearest: where no polygon covers a point, take the nearest one (planar degrees) instead of -1.

    Returns:
        (n,) int64 polygon indices.
    """
    points = shapely.points(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    out = np.full(len(points), np.iinfo(np.int64).max, dtype=np.int64)
    if len(points) and len(geoms):
        poly, pt = shapely.STRtree(points).query(geoms, predicate="intersects")
        np.minimum.at(out, pt, poly)
    miss = np.flatnonzero(out == np.iinfo(np.int64).max)
    out[miss] = -1
    if nearest and miss.size and len(geoms):
        src, dst = shapely.STRtree(geoms).query_nearest(points[miss], all_matches=False)
        out[miss[src]] = dst
    return out


def unit_xyz_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(n, 3) points on a sphere of radius ``EARTH_RADIUS_KM``.

    Euclidean (chord) distances between them equal great-circle distances to within 0.1 % below
    1,000 km, with no distortion at high latitudes, and they work with fast KD-trees.
    """
    return latlon_to_xyz(lat, lon) * EARTH_RADIUS_KM


def plane_scale(lat: np.ndarray) -> float:
    """Longitude factor ``cos(mean latitude)`` of a local equirectangular plane around the points."""
    return float(max(np.cos(np.radians(np.mean(lat))), 0.05))


def scale_x(geom, factor: float):
    """``geom`` with its x (longitude) coordinates multiplied by ``factor``."""
    return shapely.transform(geom, lambda xy: xy * np.array([factor, 1.0]))
