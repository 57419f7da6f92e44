"""GeoNames places and reverse geocoding: country, admin-1, admin-2 and nearest town for each point."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from pigeon._io import atomic_path
from pigeon.geo import check_coords, latlon_to_xyz
from pigeon.geography._admin1 import ADMIN1_FILE, admin1_index, admin1_units
from pigeon.geography._countries import countries, country_index
from pigeon.geography._resources import cache_dir, resource_path

LOCATE_COLUMNS = ("country", "country_name", "admin1", "admin1_code", "admin2", "city")


@functools.lru_cache(maxsize=1)
def places() -> pd.DataFrame:
    """GeoNames places with population >= 1000 (``cities1000``, 144,563 rows, vendored).

    Returns:
        DataFrame with ``lat``, ``lon`` (float64 degrees), ``name``, ``admin1``, ``admin2`` (names, may be
        None) and ``cc`` (GeoNames ISO alpha-2 country code).
    """
    df = pd.read_parquet(resource_path("places.parquet"))
    return df.astype({"lat": np.float64, "lon": np.float64})


#: Bump when the rule that gives each place its admin-1 unit changes (the cached file is then rebuilt).
_UNITS_CACHE_VERSION = 1


@functools.lru_cache(maxsize=1)
def place_units() -> np.ndarray:
    """Row of :func:`pigeon.geography._admin1.admin1_units` of each place of :func:`places`, -1 for none.

    By position alone (the unit that contains the place, else the nearest within 25 km): GeoNames and Natural
    Earth do not always agree on the country (Guadeloupe is ``GP`` in one and a part of France in the other).
    Computed once (about 8 s) and cached in :func:`pigeon.geography._resources.cache_dir`.
    """
    size, n = resource_path(ADMIN1_FILE).stat().st_size, len(admin1_units())
    path = cache_dir() / f"place_units_v{_UNITS_CACHE_VERSION}_{size}_{n}.npy"
    if path.is_file():
        return np.load(path)
    df = places()
    units = admin1_index(df["lat"].to_numpy(), df["lon"].to_numpy(), None).astype(np.int32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, units)
    return units


@functools.lru_cache(maxsize=None)
def _place_tree(column: str, key):
    """KD-tree on unit vectors of the places whose ``column`` (``cc`` or ``unit``) equals ``key`` (all places for
    ``None``) and their rows."""
    from scipy.spatial import cKDTree

    df = places()
    values = place_units() if column == "unit" else df[column].to_numpy()
    rows = np.arange(len(df)) if key is None else np.flatnonzero(values == key)
    return cKDTree(latlon_to_xyz(df["lat"].to_numpy()[rows], df["lon"].to_numpy()[rows])), rows


@functools.lru_cache(maxsize=1)
def degree_tree():
    """K-D tree of the places on raw ``(lat, lon)`` degrees: ``reverse_geocoder``'s search, which OSV-5M's
    admin-level accuracies use (Euclidean in degrees, not great-circle)."""
    from scipy.spatial import cKDTree

    df = places()
    return cKDTree(np.column_stack([df["lat"].to_numpy(), df["lon"].to_numpy()]))


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
    return _nearest_by(lat, lon, "cc", pd.Series(country).fillna("").to_numpy())


def _nearest_by(lat: np.ndarray, lon: np.ndarray, column: str, keys: np.ndarray) -> np.ndarray:
    """Nearest place with the same ``column`` value as each point's key ("" or -1: any place; a key without
    places: the nearest place anywhere)."""
    xyz = latlon_to_xyz(lat, lon)
    out = np.empty(lat.shape, dtype=np.int64)
    for key in np.unique(keys):
        sel = np.flatnonzero(keys == key)
        tree, rows = _place_tree(column, None if key in ("", -1) else key)
        if not rows.size:
            tree, rows = _place_tree(column, None)
        out[sel] = rows[tree.query(xyz[sel])[1]]
    return out


def locate(lat, lon, max_coast_km: float = 25.0) -> pd.DataFrame:
    """Reverse-geocode points: country, admin-1 (name and ISO 3166-2 code), admin-2 and nearest town, vectorised.

    The country comes from Natural Earth polygons (points within ``max_coast_km`` of a coast get the
    nearest country; open sea gives nulls in every column); the admin-1 unit from the real Natural Earth
    admin-1 polygons of that country (:func:`pigeon.geography._admin1.admin1_index`, with the same coastal
    tolerance). The admin-2 name is that of the nearest GeoNames place (population >= 1000) inside the same
    admin-1 unit, so it always nests in the admin-1; the town is the nearest place of the country.

    Args:
        lat, lon: degrees, scalars or shape (n,).
        max_coast_km: coastal tolerance in km.

    Returns:
        DataFrame (n rows) with ``country`` (ISO alpha-2), ``country_name``, ``admin1``, ``admin1_code``,
        ``admin2``, ``city``; None where unknown.
    """
    lat, lon = check_coords(lat, lon)
    idx = country_index(lat, lon, max_coast_km)
    on_land = idx >= 0
    table = countries()
    out = pd.DataFrame({c: np.full(lat.shape, None, dtype=object) for c in LOCATE_COLUMNS})
    if not on_land.any():
        return out
    lat, lon = lat[on_land], lon[on_land]
    codes = table["iso_a2"].to_numpy(dtype=object)[idx[on_land]]
    out.loc[on_land, "country"] = codes
    out.loc[on_land, "country_name"] = table["name"].to_numpy(dtype=object)[idx[on_land]]
    unit = admin1_index(lat, lon, codes, max_coast_km)
    units, has = admin1_units(), unit >= 0
    for col in ("admin1", "admin1_code"):
        out.loc[on_land, col] = np.where(has, units[col].to_numpy(dtype=object)[np.maximum(unit, 0)], None)
    df = places()
    in_unit = _nearest_by(lat, lon, "unit", unit)
    out.loc[on_land, "admin2"] = np.where(has & (place_units()[in_unit] == unit),
                                          df["admin2"].to_numpy(dtype=object)[in_unit], None)
    out.loc[on_land, "city"] = df["name"].to_numpy(dtype=object)[nearest_place(lat, lon, codes)]
    return out.replace({np.nan: None})
