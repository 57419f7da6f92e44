"""Independent distance checks and a clustered manifest with view centres (splits, decontamination, breakdowns)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pigeon.geo import wrap_lon

R_KM = 6378.137


def brute_force_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise great-circle distances (spherical law of cosines): independent of pigeon's ball tree."""
    la, lo = np.radians(a[:, :1]), np.radians(a[:, 1:])
    lb, ob = np.radians(b[:, 0][None]), np.radians(b[:, 1][None])
    cos = np.sin(la) * np.sin(lb) + np.cos(la) * np.cos(lb) * np.cos(lo - ob)
    return R_KM * np.arccos(np.clip(cos, -1, 1))


def points_of(df: pd.DataFrame) -> list[np.ndarray]:
    """Per row: its location and view centres, (k, 2)."""
    return [np.column_stack([[lat, *vlat], [lon, *vlon]])
            for lat, lon, vlat, vlon in zip(df["lat"], df["lon"], df["view_lat"], df["view_lon"])]


def manifest(n: int = 400, seed: int = 0, views: bool = True) -> pd.DataFrame:
    """Locations in clusters, each with 2 view centres 150 km away (like Blue Marble's panoramas)."""
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(-50, 60, 30), rng.uniform(-170, 170, 30)])
    k = rng.integers(0, 30, n)
    lat = np.clip(centres[k, 0] + rng.normal(0, 4, n), -85, 85)
    lon = wrap_lon(centres[k, 1] + rng.normal(0, 6, n))
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "image": [[f"{i}_0.jpg", f"{i}_1.jpg"] for i in range(n)],
                       "lat": lat, "lon": lon})
    if views:
        from pigeon.geo import destination_point

        bearing = rng.uniform(0, 360, (n, 1)) + [0, 180]
        vlat, vlon = destination_point(lat[:, None], lon[:, None], bearing, 150.0)
        df["view_lat"], df["view_lon"] = list(vlat), list(vlon)
    return df
