"""World maps for reports, geocell plots and the demo (matplotlib, plate carrée: x = lon, y = lat degrees).

Country outlines come from :func:`pigeon.geography.countries` (Natural Earth 1:10m), simplified to the map's
scale. Call ``matplotlib.use("Agg")`` (or set ``MPLBACKEND=Agg``) before plotting on a machine without a display.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from pigeon.geo import latlon_to_xyz, xyz_to_latlon

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import LineCollection
    from matplotlib.path import Path as MplPath

__all__ = ["WORLD_BBOX", "bbox_around", "great_circle_lines", "world_map"]

#: The whole world as ``(lat_min, lon_min, lat_max, lon_max)`` degrees.
WORLD_BBOX = (-90.0, -180.0, 90.0, 180.0)
LAND_COLOR, OCEAN_COLOR, BORDER_COLOR = "#e8e4da", "#dbe8f1", "#a5a5a5"


@functools.lru_cache(maxsize=4)
def _country_path(tolerance_deg: float) -> MplPath:
    """All country rings as one compound matplotlib path (exteriors CCW, holes CW), simplified."""
    import shapely
    from matplotlib.path import Path as MplPath

    from pigeon.geography import countries

    geoms = shapely.get_parts(countries().geometry.to_numpy())
    if tolerance_deg > 0:
        geoms = shapely.simplify(geoms, tolerance_deg, preserve_topology=True)
    geoms = shapely.orient_polygons(geoms[~shapely.is_empty(geoms)])
    rings = shapely.get_rings(geoms)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    codes = np.full(len(coords), MplPath.LINETO, dtype=np.uint8)
    starts = np.r_[0, np.flatnonzero(np.diff(ring_of)) + 1]
    codes[starts] = MplPath.MOVETO
    codes[np.r_[starts[1:] - 1, len(coords) - 1]] = MplPath.CLOSEPOLY
    return MplPath(coords, codes)


def bbox_around(lat, lon, margin: float = 0.15, min_span_deg: float = 4.0) -> tuple[float, float, float, float]:
    """A map extent around points, padded by ``margin`` of its span; the world if they span most of it.

    Args:
        lat, lon: degrees, shape (n,).
        margin: padding as a fraction of the span on each side.
        min_span_deg: the smallest extent in degrees (for a single point or a tight cluster).

    Returns:
        ``(lat_min, lon_min, lat_max, lon_max)`` degrees, clipped to :data:`WORLD_BBOX`.
    """
    lat, lon = np.asarray(lat, dtype=np.float64).ravel(), np.asarray(lon, dtype=np.float64).ravel()
    lo, hi = np.array([lat.min(), lon.min()]), np.array([lat.max(), lon.max()])
    pad = np.maximum((hi - lo) * margin, (min_span_deg - (hi - lo)) / 2)
    lo, hi = np.maximum(lo - pad, [-90, -180]), np.minimum(hi + pad, [90, 180])
    if hi[1] - lo[1] > 240:
        return WORLD_BBOX
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def world_map(ax: Axes, bbox: tuple[float, float, float, float] | None = None, *,
              land: str = LAND_COLOR, ocean: str = OCEAN_COLOR, border: str = BORDER_COLOR) -> Axes:
    """Draw country outlines on ``ax`` as a basemap and set the extent.

    Args:
        ax: matplotlib axes; x is longitude and y latitude in degrees.
        bbox: ``(lat_min, lon_min, lat_max, lon_max)`` degrees; default :data:`WORLD_BBOX`.
        land, ocean, border: colours of the countries, the background and the borders.

    Returns:
        ``ax``, with an aspect ratio that keeps shapes right at the centre latitude.
    """
    from matplotlib.patches import PathPatch

    lat_min, lon_min, lat_max, lon_max = bbox or WORLD_BBOX
    span = max(lon_max - lon_min, lat_max - lat_min)
    tolerance = min(0.1, 10.0 ** math.floor(math.log10(max(span, 1e-3) / 1000.0)))
    ax.set_facecolor(ocean)
    # add_artist, not add_patch: the extent is set below, so the seconds add_patch spends walking every
    # vertex to update the data limits are wasted
    ax.add_artist(PathPatch(_country_path(tolerance), facecolor=land, edgecolor=border, linewidth=0.3, zorder=0))
    ax.set_xlim(lon_min, lon_max)
    ax.set_ylim(lat_min, lat_max)
    ax.set_aspect(1.0 / max(math.cos(math.radians((lat_min + lat_max) / 2)), 0.1))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    return ax


def _great_circle_points(lat1, lon1, lat2, lon2, n: int) -> np.ndarray:
    """(m, n, 2) (lat, lon) points along the great circles from points 1 to points 2."""
    a, b = latlon_to_xyz(lat1, lon1).reshape(-1, 3), latlon_to_xyz(lat2, lon2).reshape(-1, 3)
    omega = np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0))[:, None, None]
    t = np.linspace(0.0, 1.0, n)[None, :, None]
    sin = np.sin(omega)
    safe = np.where(sin < 1e-9, 1.0, sin)
    slerp = (np.sin((1 - t) * omega) * a[:, None] + np.sin(t * omega) * b[:, None]) / safe
    xyz = np.where(sin < 1e-9, (1 - t) * a[:, None] + t * b[:, None], slerp)
    lat, lon = xyz_to_latlon(xyz)
    return np.stack([lat, lon], axis=-1)


def great_circle_lines(ax: Axes, lat1, lon1, lat2, lon2, n: int = 32, **kwargs) -> LineCollection:
    """Draw great-circle arcs from points 1 to points 2, broken where they cross the dateline.

    Args:
        ax: axes from :func:`world_map`.
        lat1, lon1, lat2, lon2: degrees, shape (m,).
        n: points per arc.
        **kwargs: passed to :class:`matplotlib.collections.LineCollection` (``color``, ``linewidth`` ...).

    Returns:
        The added ``LineCollection``.
    """
    from matplotlib.collections import LineCollection

    pts = _great_circle_points(lat1, lon1, lat2, lon2, n)[..., ::-1]  # (m, n, [lon, lat])
    # split each arc where it jumps across the dateline, so it does not streak across the map
    segments = [piece for arc in pts
                for piece in np.split(arc, np.flatnonzero(np.abs(np.diff(arc[:, 0])) > 180.0) + 1)]
    lines = LineCollection(segments, **kwargs)
    ax.add_collection(lines)
    return lines
