"""Geodesy core: great-circle distances, nearest neighbours, spherical means, GeoGuessr score.

Convention, used everywhere in pigeon: coordinates are ``(lat, lon)`` in degrees on
WGS84 (EPSG:4326); latitude in [-90, 90], longitude in [-180, 180]; distances are
great-circle kilometres on a sphere of radius :data:`EARTH_RADIUS_KM`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pigeon.errors import InputError
from pigeon.validation import check_coords  # noqa: F401  (re-exported: the coordinate check lives there)

if TYPE_CHECKING:
    import torch

#: Sphere radius in km. The PIGEON reference code uses the WGS84 *equatorial* radius
#: (6378.137 km), not the mean radius (6371.0088 km); we keep it so that km figures are
#: comparable with the paper's (they differ by 0.11 %).
EARTH_RADIUS_KM = 6378.137

#: GeoGuessr's score decay constant in km: ``score = round(5000 * exp(-d / 1492.7))``.
GEOGUESSR_DECAY_KM = 1492.7

#: The paper's radii: street, city, region, country, continent (km).
RADII_KM = (1, 25, 200, 750, 2500)


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points, broadcasting like numpy.

    Args:
        lat1, lon1, lat2, lon2: degrees; any broadcastable shapes.

    Returns:
        float64 array of the broadcast shape, km.
    """
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def pairwise_haversine_km(a, b) -> np.ndarray:
    """Distances between every row of ``a`` (n, 2) and every row of ``b`` (m, 2), (lat, lon) degrees.

    Returns:
        (n, m) float64, km.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    return haversine_km(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1])


def haversine_km_torch(lat1: torch.Tensor, lon1: torch.Tensor, lat2: torch.Tensor, lon2: torch.Tensor) -> torch.Tensor:
    """Differentiable great-circle distance in km for torch tensors (degrees, broadcasting)."""
    import torch

    lat1, lon1, lat2, lon2 = (torch.deg2rad(t) for t in (lat1, lon1, lat2, lon2))
    a = torch.sin((lat2 - lat1) / 2) ** 2 + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    # keep a inside (0, 1) at the dtype's resolution so the gradient of asin(sqrt(a)) stays finite at
    # identical points and antipodes (NaN otherwise); this costs < 1 m in float64, ~4 km at float32 antipodes
    eps = torch.finfo(a.dtype).eps
    return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(a.clamp(eps * eps, 1.0 - eps)))


def latlon_to_xyz(lat, lon) -> np.ndarray:
    """Unit vectors (..., 3) for (lat, lon) in degrees."""
    lat, lon = np.radians(np.asarray(lat, dtype=np.float64)), np.radians(np.asarray(lon, dtype=np.float64))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def xyz_to_latlon(xyz) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) degrees of vectors (..., 3); the vectors need not be unit length."""
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    return np.degrees(np.arctan2(z, np.hypot(x, y))), np.degrees(np.arctan2(y, x))


def spherical_mean(lat, lon, weights=None) -> tuple[float, float]:
    """The (lat, lon) of the normalised mean unit vector: a centroid that is right across the dateline.

    For a degenerate set (e.g. two antipodes) the result is arbitrary but finite.
    """
    xyz = latlon_to_xyz(lat, lon).reshape(-1, 3)
    if len(xyz) == 0:
        raise InputError("spherical_mean of an empty set of points; pass at least one point")
    w = np.ones(len(xyz)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    mean = (xyz * w[:, None]).sum(axis=0)
    if np.linalg.norm(mean) < 1e-12:
        mean = xyz[0]
    mlat, mlon = xyz_to_latlon(mean)
    return float(mlat), float(mlon)


def spherical_means(lat, lon, groups, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The spherical mean (:func:`spherical_mean`'s rule) of each group of points: ``(n_groups,)`` lat and lon.

    Args:
        lat, lon: (n,) degrees.
        groups: (n,) int group of each point, in ``[0, n_groups)``; a group without points gets (0, 0).
        n_groups: number of groups.
    """
    xyz = latlon_to_xyz(lat, lon).reshape(-1, 3)
    groups = np.asarray(groups, dtype=np.int64).reshape(-1)
    sums = np.stack([np.bincount(groups, weights=xyz[:, j], minlength=n_groups) for j in range(3)], axis=1)
    return xyz_to_latlon(sums)


def wrap_lon(lon) -> np.ndarray:
    """Wrap longitudes into [-180, 180)."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def destination_point(lat, lon, bearing_deg, distance_km) -> tuple[np.ndarray, np.ndarray]:
    """Point reached from (lat, lon) after ``distance_km`` along the initial ``bearing_deg`` (from north)."""
    lat1, lon1 = np.radians(np.asarray(lat, dtype=np.float64)), np.radians(np.asarray(lon, dtype=np.float64))
    brg = np.radians(np.asarray(bearing_deg, dtype=np.float64))
    delta = np.asarray(distance_km, dtype=np.float64) / EARTH_RADIUS_KM
    lat2 = np.arcsin(np.sin(lat1) * np.cos(delta) + np.cos(lat1) * np.sin(delta) * np.cos(brg))
    lon2 = lon1 + np.arctan2(np.sin(brg) * np.sin(delta) * np.cos(lat1), np.cos(delta) - np.sin(lat1) * np.sin(lat2))
    return np.degrees(lat2), wrap_lon(np.degrees(lon2))


def initial_bearing(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Initial great-circle bearing in degrees [0, 360) from point 1 to point 2."""
    p1, l1, p2, l2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    y = np.sin(l2 - l1) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(l2 - l1)
    return np.degrees(np.arctan2(y, x)) % 360.0


def geoguessr_score(distance_km) -> np.ndarray:
    """GeoGuessr points for a guess ``distance_km`` away: ``round(5000 * exp(-d / 1492.7))``."""
    d = np.asarray(distance_km, dtype=np.float64)
    return np.round(5000.0 * np.exp(-d / GEOGUESSR_DECAY_KM)).astype(np.int64)


def nearest_km(lat, lon, ref_lat, ref_lon) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle distance from each point to the nearest reference point (a haversine ball tree).

    Args:
        lat, lon: (n,) query points, degrees.
        ref_lat, ref_lon: (m,) reference points, degrees; m >= 1.

    Returns:
        ``(distance_km (n,) float64, index (n,) int64)``: the distance to, and the position of, the nearest
        reference point.
    """
    from sklearn.neighbors import BallTree

    query = np.radians(np.column_stack([np.ravel(lat), np.ravel(lon)]).astype(np.float64))
    ref = np.radians(np.column_stack([np.ravel(ref_lat), np.ravel(ref_lon)]).astype(np.float64))
    if len(ref) == 0:
        raise InputError("nearest_km needs at least one reference point")
    if len(query) == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    dist, index = BallTree(ref, metric="haversine").query(query, k=1)
    return dist[:, 0] * EARTH_RADIUS_KM, index[:, 0].astype(np.int64)
