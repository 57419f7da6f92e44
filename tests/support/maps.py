"""Synthetic maps shared by the geography and geocell tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

#: A country "AA" (lon 0-4, lat 0-4) with an island to the north.
INTERLEAVED_LAND = shapely.union_all([shapely.box(0, 0, 4, 4), shapely.box(1.0, 5.0, 1.5, 5.5)])


def interleaved_places(n: int = 300, swap: float = 0.15, seed: int = 0) -> pd.DataFrame:
    """GeoNames-like places of country AA: admin-2 names by 1-degree band of longitude, with ``swap`` of the
    places carrying a neighbouring band's name, so that the Voronoi regions of the names interleave."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(0.02, 3.98, n), rng.uniform(0.02, 3.98, n)
    band = np.minimum(lon.astype(int), 3)
    moved = rng.random(n) < swap
    band[moved] = np.clip(band[moved] + rng.choice([-1, 1], int(moved.sum())), 0, 3)
    return pd.DataFrame({"lat": lat, "lon": lon, "name": [f"p{i}" for i in range(n)], "admin1": "R",
                         "admin2": [f"band{b}" for b in band], "cc": "AA"})


def fragmented_areas():
    """The admin-2 areas of AA derived from :func:`interleaved_places` *before* the contiguity cleanup."""
    from pigeon.geography._admin import _voronoi_areas

    return _voronoi_areas("AA", INTERLEAVED_LAND, interleaved_places(), level=2)
