"""A toy world with known answers: two countries on a 2.5-degree admin-2 grid and a remote island.

- country AA (lon 0-10, lat 0-10): admin-1 W (lon < 5) and E; a dense "city" of three clusters (150 points)
  in area AA/W/1-1 (lon 2.5-5, lat 2.5-5) that the paper's three-cluster rule splits; 35 points in most
  other areas; some empty;
- country BB (lon 10-20): sparse, 4 points per area, so its cells must be fused;
- an island of AA (lon 30-31, lat 0-1) with 5 points: isolated, it stays below min_size.
"""

from __future__ import annotations

import numpy as np
import shapely

MIN_SIZE, MAX_SIZE = 30, 60
CITY = (2.5, 2.5, 5.0, 5.0)  # lon_min, lat_min, lon_max, lat_max
ISLAND = (30.0, 0.0, 31.0, 1.0)
EMPTY_AA = {(3, 3), (0, 3)}  # (column, row) of AA areas without points


def make_areas():
    import geopandas as gpd
    from shapely.geometry import box

    rows = []
    for country, x0 in (("AA", 0.0), ("BB", 10.0)):
        for i in range(4):
            for j in range(4):
                admin1 = "W" if i < 2 else "E"
                lon0, lat0 = x0 + 2.5 * i, 2.5 * j
                rows.append((f"{country}/{admin1}/{i}-{j}", country, admin1, f"{i}-{j}",
                             box(lon0, lat0, lon0 + 2.5, lat0 + 2.5)))
    rows.append(("AA/E/island", "AA", "E", "island", box(*ISLAND)))
    return gpd.GeoDataFrame(rows, columns=["area_id", "country", "admin1", "admin2", "geometry"], crs="EPSG:4326")


def make_points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lat, lon = [], []

    def uniform(n, lon0, lat0, lon1, lat1):
        lon.append(rng.uniform(lon0, lon1, n))
        lat.append(rng.uniform(lat0, lat1, n))

    for centre in ((3.0, 3.0), (4.4, 3.2), (3.6, 4.5)):  # the city: three dense clusters plus a thin spread
        lon.append(rng.normal(centre[0], 0.05, 45).clip(CITY[0] + 0.01, CITY[2] - 0.01))
        lat.append(rng.normal(centre[1], 0.05, 45).clip(CITY[1] + 0.01, CITY[3] - 0.01))
    uniform(15, *CITY)
    for i in range(4):
        for j in range(4):
            if (i, j) != (1, 1) and (i, j) not in EMPTY_AA:
                uniform(35, 2.5 * i + 0.01, 2.5 * j + 0.01, 2.5 * i + 2.49, 2.5 * j + 2.49)
            uniform(4, 10 + 2.5 * i + 0.01, 2.5 * j + 0.01, 10 + 2.5 * i + 2.49, 2.5 * j + 2.49)
    uniform(5, ISLAND[0] + 0.1, ISLAND[1] + 0.1, ISLAND[2] - 0.1, ISLAND[3] - 0.1)
    return np.concatenate(lat), np.concatenate(lon)


def sampled_cells():
    """Two cells of 600 points each (three blobs), far apart: OPTICS sees a sample of 200 of each."""
    rng = np.random.default_rng(0)
    centres = [(60.0, 10.0), (60.6, 10.4), (60.2, 11.6)]
    lat = np.concatenate([rng.normal(a, 0.02, 200) for a, _ in centres])
    lon = np.concatenate([rng.normal(b, 0.04, 200) for _, b in centres])
    lat, lon = np.r_[lat, lat], np.r_[lon, lon + 5.0]
    parents = [shapely.box(9.0, 59.0, 12.5, 61.5), shapely.box(14.0, 59.0, 17.5, 61.5)]
    return parents, [np.arange(600), np.arange(600, 1200)], lat, lon


def as_cells(geoms, members):
    """Cells as a comparable set: (shape WKB, sorted point indices)."""
    return sorted((shapely.to_wkb(shapely.normalize(g)), tuple(np.sort(m).tolist())) for g, m in zip(geoms, members))
