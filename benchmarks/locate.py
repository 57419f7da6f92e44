"""Throughput of ``pigeon.geography.locate`` and ``enrich`` (points per second).

Points are the geoclip-like mix a geolocation dataset has: 80 % near GeoNames towns (jittered a few km),
20 % uniform on the sphere (mostly sea). ``locate`` is timed cold (the first call in a fresh process: it loads
the country polygons and builds its indexes) and then warm; ``enrich`` warm. Run:
``python benchmarks/locate.py [N]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from pigeon.geo import destination_point
from pigeon.geography import enrich, locate, places


def sample_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) degrees: 80 % within 5 km of a random town, 20 % uniform on the sphere."""
    rng = np.random.default_rng(seed)
    towns = places().sample(n, replace=True, random_state=seed)
    n_town = int(0.8 * n)
    lat_t, lon_t = destination_point(towns["lat"].to_numpy()[:n_town], towns["lon"].to_numpy()[:n_town],
                                     rng.uniform(0, 360, n_town), rng.uniform(0, 5, n_town))
    lat_u = np.degrees(np.arcsin(rng.uniform(-1, 1, n - n_town)))
    lon_u = rng.uniform(-180, 180, n - n_town)
    return np.concatenate([lat_t, lat_u]), np.concatenate([lon_t, lon_u])


def main(n: int = 20_000) -> None:
    lat, lon = sample_points(n)  # loads the GeoNames places table, so the cold call below does not
    other = sample_points(n, seed=1)
    runs = (("cold: first call in this process, loads the country polygons and builds the indexes", lat, lon),
            ("warm: the same points again", lat, lon),
            ("warm: new points", *other))
    for label, points_lat, points_lon in runs:
        start = time.perf_counter()
        locate(points_lat, points_lon)
        t_locate = time.perf_counter() - start
        print(f"locate ({label}): {n} points in {t_locate:.2f} s = {n / t_locate:,.0f} points/s")
    enrich(pd.DataFrame({"lat": lat[:10], "lon": lon[:10]}))  # load the rasters outside the timing
    start = time.perf_counter()
    enrich(pd.DataFrame({"lat": lat, "lon": lon}))
    t_enrich = time.perf_counter() - start
    print(f"enrich: {n} points in {t_enrich:.2f} s = {n / t_enrich:,.0f} points/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
