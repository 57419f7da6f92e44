"""Auxiliary geodata: grid pixel arithmetic, values at known places, enrich()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pigeon.errors import InputError, MissingDependencyError
from pigeon.geography import (
    ENRICH_COLUMNS, KOPPEN_CLASSES, KOPPEN_NAMES, Grid, climate_grids, elevation_grid, enrich, is_land, koppen,
    pop_density, season,
)

# name: (lat, lon)
PLACES = {
    "sahara": (24.0, 5.0),
    "manaus": (-3.1, -60.0),
    "la_paz": (-16.5, -68.15),
    "tokyo": (35.68, 139.69),
    "pacific": (0.0, -140.0),
    "moscow": (55.75, 37.62),
    "dead_sea": (31.5, 35.5),
}


def _at(*names):
    lat, lon = zip(*(PLACES[n] for n in names))
    return np.array(lat), np.array(lon)


def test_grid_pixel_arithmetic_cell_registered():
    grid = Grid(np.arange(32).reshape(4, 8))  # 45 degree pixels, row 0 = 90..45 N, col 0 = 180..135 W
    lat = np.array([90.0, 89.0, 44.9, -90.0, 0.0, 10.0, 10.0])
    lon = np.array([-180.0, -136.0, -134.0, 0.0, 180.0, 179.9, -0.1])
    rows, cols = grid.pixel(lat, lon)
    assert rows.tolist() == [0, 0, 1, 3, 2, 1, 1]
    assert cols.tolist() == [0, 0, 1, 4, 0, 7, 3]  # lon 180 wraps to -180
    assert grid.sample([-89.0], [170.0]).tolist() == [31.0]


def test_grid_point_registered_rounds_to_nearest_point():
    # values on grid points every 0.25 deg from (90, -180), as ERA5 after rolling
    grid = Grid(np.arange(721 * 1440).reshape(721, 1440), north=90.125, west=-180.125, res=0.25, scale=1.0)
    rows, cols = grid.pixel([90.0, 51.49, 51.38, -90.0], [-180.0, -0.12, 179.9, 179.8])
    assert rows.tolist() == [0, 154, 154, 720]
    assert cols.tolist() == [0, 720, 0, 1439]  # 179.9 is nearest to -180 (= 180)


def test_grid_decoding_and_nodata():
    grid = Grid(np.array([[0, 1, 0, 1], [2, 255, 2, 255]], dtype=np.uint8), scale=28.0, offset=-450.0, nodata=255)
    values = grid.sample([45.0, 45.0, -45.0, -45.0], [-180.0, -90.0, -180.0, -90.0])
    assert values[:3].tolist() == [-450.0, -422.0, -394.0] and np.isnan(values[3])


def test_koppen_table_is_canonical():
    assert len(KOPPEN_CLASSES) == 31 and len(set(KOPPEN_CLASSES)) == 31
    assert set(KOPPEN_NAMES) == set(KOPPEN_CLASSES)


def test_koppen_and_land_at_known_places():
    lat, lon = _at("sahara", "manaus", "tokyo", "moscow", "pacific")
    assert koppen(lat, lon).tolist() == ["BWh", "Af", "Cfa", "Dfb", None]
    assert is_land(lat, lon).tolist() == [True, True, True, True, False]


def test_elevation_at_known_places():
    lat, lon = _at("la_paz", "dead_sea", "manaus", "pacific")
    elev = elevation_grid().sample(lat, lon)
    assert elev[0] > 3500 and elev[1] < 0 and 0 <= elev[2] < 200 and np.isnan(elev[3])


def test_climate_at_known_places():
    grids = climate_grids()
    lat, lon = _at("sahara", "manaus", "moscow")
    t_mean, t_range = grids["temp_mean_c"].sample(lat, lon), grids["temp_range_c"].sample(lat, lon)
    precip = grids["precip_mm"].sample(lat, lon)
    assert t_mean[0] > 20 and t_mean[1] > 24 and t_mean[2] < 10
    assert t_range[1] < 4 < 20 < t_range[2]  # equator vs continental
    assert precip[0] < 10 < 150 < precip[1]  # desert vs rainforest (mm/month)


def test_population_proxy_ranks_places():
    lat, lon = _at("tokyo", "la_paz", "sahara", "pacific")
    density = pop_density(lat, lon)
    assert density[0] > 1000 and density[1] > 100 and density[2] < 10 and density[3] == 0


def test_season_flips_with_hemisphere():
    got = season(pd.array([1, 7, 4, 10, None], dtype="Int64"), [50.0, 50.0, -30.0, -30.0, 0.0])
    assert got.tolist() == ["winter", "summer", "autumn", "spring", None]


def _manifest(**extra):
    lat, lon = _at("sahara", "manaus", "tokyo", "pacific")
    return pd.DataFrame({"id": list("abcd"), "image": [f"{i}.jpg" for i in "abcd"], "lat": lat, "lon": lon, **extra})


def test_enrich_columns_values_and_determinism():
    df = _manifest(taken_at=["2021-07-04T10:00:00+02:00", "2020-01-15", None, "2019/12/24 08:00"])
    out = enrich(df)
    assert list(out.columns) == [*df.columns, *ENRICH_COLUMNS]
    assert out["country"].tolist()[:3] == ["DZ", "BR", "JP"] and out["country"].isna().tolist()[3]
    assert out["koppen"].tolist()[:3] == ["BWh", "Af", "Cfa"] and out["koppen"].isna().tolist()[3]
    assert out["drive_side"].tolist()[:3] == ["right", "right", "left"] and out["drive_side"].isna().tolist()[3]
    assert out["land"].tolist() == [True, True, True, False]
    assert out["month"].tolist() == [7, 1, pd.NA, 12]
    assert out["season"].fillna("-").tolist() == ["summer", "summer", "-", "winter"]
    pd.testing.assert_frame_equal(out, enrich(df))
    assert df.columns.tolist() == ["id", "image", "lat", "lon", "taken_at"]  # input untouched


@pytest.mark.parametrize("kwargs, match", [
    (dict(lat=[np.nan]), "lat"), (dict(lat=[95.0]), "lat"), (dict(lon=[-200.0]), "lon"),
    (dict(taken_at=["yesterday"]), "taken_at"), (dict(taken_at=["2021-13-01"]), "taken_at"),
])
def test_enrich_bad_input(kwargs, match):
    row = dict(id=["a"], image=["a.jpg"], lat=[10.0], lon=[10.0]) | kwargs
    with pytest.raises(InputError, match=match):
        enrich(pd.DataFrame(row))


def test_enrich_empty_and_missing_columns():
    with pytest.raises(InputError, match="empty"):
        enrich(pd.DataFrame({"lat": [], "lon": []}))
    with pytest.raises(InputError, match="lon"):
        enrich(pd.DataFrame({"lat": [1.0]}))
    with pytest.raises(InputError, match="choose from"):
        enrich(_manifest(), rasters={"koppen": "x.tif"})


def test_user_raster_needs_rasterio(tmp_path):
    try:
        import rasterio  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="pip install rasterio"):
            enrich(_manifest(), rasters={"elevation_m": tmp_path / "dem.tif"})
    else:
        pytest.skip("rasterio is installed; see test_user_raster_values")


def test_user_raster_values(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    data = np.arange(180 * 360, dtype=np.float32).reshape(180, 360)  # 1 deg pixels from (90 N, 180 W)
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", height=180, width=360, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(-180, 90, 1, 1)) as dst:
        dst.write(data, 1)
    out = enrich(_manifest(), rasters={"elevation_m": path})
    lat, lon = _at("sahara", "manaus", "tokyo", "pacific")
    want = data[np.floor(90 - lat).astype(int), np.floor(lon + 180).astype(int)]
    assert out["elevation_m"].tolist() == want.tolist()
