"""GeoNames places and reverse geocoding: country, admin-1, admin-2 and nearest town for each point."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from pigeon.geo import check_coords, latlon_to_xyz
from pigeon.geography._countries import countries, country_index
from pigeon.geography._resources import resource_path

LOCATE_COLUMNS = ("country", "country_name", "admin1", "admin2", "city")


@functools.lru_cache(maxsize=1)
def places() -> pd.DataFrame:
    """GeoNames places with population >= 1000 (``cities1000``, 144,563 rows, vendored).

    Returns:
        DataFrame with ``lat``, ``lon`` (float64 degrees), ``name``, ``admin1``, ``admin2`` (names, may be
        None) and ``cc`` (GeoNames ISO alpha-2 country code).
    """
    df = pd.read_parquet(resource_path("places.parquet"))
    return df.astype({"lat": np.float64, "lon": np.float64})


@functools.lru_cache(maxsize=None)
def _place_tree(cc: str | None):
    """KD-tree on unit vectors of the places of one country (all places for ``None``) and their rows."""
    from scipy.spatial import cKDTree

    df = places()
    rows = np.arange(len(df)) if cc is None else np.flatnonzero(df["cc"].to_numpy() == cc)
    return cKDTree(latlon_to_xyz(df["lat"].to_numpy()[rows], df["lon"].to_numpy()[rows])), rows


def nearest_place(lat, lon, country=None) -> np.ndarray:
    """Row of :func:`places` nearest to each point, searched within the point's country when given.

    Args:
        lat, lon: degrees, shape (n,).
        country: ISO alpha-2 per point (or None for any country), shape (n,); a country with no places
            falls back to the nearest place anywhere.

    Returns:
        int64 array (n,) of row positions in :func:`places`.
    """
    lat, lon = check_coords(lat, lon)
    country = np.full(lat.shape, None, dtype=object) if country is None else np.asarray(country, dtype=object)
    xyz = latlon_to_xyz(lat, lon)
    out = np.empty(lat.shape, dtype=np.int64)
    keys = pd.Series(country).fillna("").to_numpy()
    for cc in np.unique(keys):
        sel = np.flatnonzero(keys == cc)
        tree, rows = _place_tree(cc or None)
        if not rows.size:
            tree, rows = _place_tree(None)
        out[sel] = rows[tree.query(xyz[sel])[1]]
    return out


def locate(lat, lon, max_coast_km: float = 25.0) -> pd.DataFrame:
    """Reverse-geocode points: country, admin-1, admin-2 and nearest town, vectorised.

    The country comes from Natural Earth polygons (points within ``max_coast_km`` of a coast get the
    nearest country; open sea gives nulls in every column). Admin names and the town are those of the
    nearest GeoNames place (population >= 1000) in the same country.

    Args:
        lat, lon: degrees, scalars or shape (n,).
        max_coast_km: coastal tolerance in km.

    Returns:
        DataFrame (n rows) with ``country`` (ISO alpha-2), ``country_name``, ``admin1``, ``admin2``, ``city``;
        None where unknown.
    """
    lat, lon = check_coords(lat, lon)
    idx = country_index(lat, lon, max_coast_km)
    on_land = idx >= 0
    table = countries()
    out = pd.DataFrame({c: np.full(lat.shape, None, dtype=object) for c in LOCATE_COLUMNS})
    if not on_land.any():
        return out
    codes = table["iso_a2"].to_numpy(dtype=object)[idx[on_land]]
    out.loc[on_land, "country"] = codes
    out.loc[on_land, "country_name"] = table["name"].to_numpy(dtype=object)[idx[on_land]]
    rows = nearest_place(lat[on_land], lon[on_land], codes)
    df = places()
    same = df["cc"].to_numpy(dtype=object)[rows] == codes
    for col in ("admin1", "admin2"):
        values = df[col].to_numpy(dtype=object)[rows]
        out.loc[on_land, col] = np.where(same, values, None)
    out.loc[on_land, "city"] = df["name"].to_numpy(dtype=object)[rows]
    return out.replace({np.nan: None})
