"""Countries, country lookup, reverse geocoding and admin areas at known places."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.geo import destination_point
from pigeon.geography import admin_areas, countries, country_of, locate

# (lat, lon, iso_a2, admin1) well inside each place; admin-1 is the real Natural Earth unit (France: départements)
KNOWN = [
    (48.8566, 2.3522, "FR", "Paris"),
    (59.9139, 10.7522, "NO", "Oslo"),
    (40.7128, -74.0060, "US", "New York"),
    (-33.8688, 151.2093, "AU", "New South Wales"),
    (35.6762, 139.6503, "JP", "Tokyo"),
    (-1.2921, 36.8219, "KE", "Nairobi"),
    (-22.9068, -43.1729, "BR", "Rio de Janeiro"),
    (42.6629, 21.1655, "XK", None),
]
# a state or province capital per continent: (lat, lon, country, admin-1 name, ISO 3166-2)
CAPITALS = [
    (48.1374, 11.5755, "DE", "Bayern", "DE-BY"),               # Munich
    (38.5816, -121.4944, "US", "California", "US-CA"),         # Sacramento
    (-34.9205, -57.9536, "AR", "Buenos Aires", "AR-B"),        # La Plata
    (-29.6006, 30.3794, "ZA", "KwaZulu-Natal", "ZA-KZN"),      # Pietermaritzburg
    (30.5728, 104.0668, "CN", "Sichuan", "CN-SC"),             # Chengdu
    (-27.4698, 153.0251, "AU", "Queensland", "AU-QLD"),        # Brisbane
]


@pytest.fixture(scope="module")
def admin_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("pigeon-cache")


def test_countries_schema_and_codes():
    table = countries()
    assert list(table.columns) == ["iso_a2", "iso_a3", "name", "continent", "geometry"]
    assert table.crs.to_epsg() == 4326
    assert table["iso_a2"].is_unique and table["iso_a2"].str.fullmatch(r"[A-Z]{2}").all()
    assert not table["iso_a3"].eq("-99").any()
    # Natural Earth gives France and Norway "-99" in ISO_A2; they must still be there
    by_code = table.set_index("iso_a2")
    assert by_code.loc["FR", "iso_a3"] == "FRA" and by_code.loc["NO", "name"] == "Norway"
    assert by_code.loc["CU", "name"] == "Cuba"
    assert len(table) > 230
    assert countries() is table  # cached


def test_country_of_known_places_sea_and_border():
    lat, lon, codes, _ = zip(*KNOWN)
    assert list(country_of(lat, lon)) == list(codes)
    assert country_of(30.0, -40.0)[0] is None  # mid-Atlantic
    # 1 km either side of the Strasbourg (FR) / Kehl (DE) border on the Rhine
    assert list(country_of([48.5735, 48.5735], [7.7820, 7.8160])) == ["FR", "DE"]


def test_coastal_tolerance():
    # Brighton's coast, then 10 km and 60 km due south into the Channel
    lat, lon = destination_point(50.81, -0.14, 180.0, np.array([10.0, 60.0]))
    # 60 km south is mid-Channel, more than 25 km from England and from France
    assert country_of(lat, lon, max_coast_km=25.0).tolist() == ["GB", None]
    assert country_of(lat, lon, max_coast_km=0.0).tolist() == [None, None]


def test_vectorised_equals_scalar():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 70, 40), rng.uniform(-180, 180, 40)
    batch = country_of(lat, lon)
    assert [country_of(a, b)[0] for a, b in zip(lat, lon)] == batch.tolist()
    table = locate(lat, lon)
    for i in range(0, 40, 7):
        assert locate(lat[i], lon[i]).iloc[0].to_dict() == table.iloc[i].to_dict()


def test_locate_known_places():
    lat, lon, codes, admin1 = zip(*KNOWN)
    table = locate(lat, lon)
    assert list(table.columns) == ["country", "country_name", "admin1", "admin1_code", "admin2", "city"]
    assert table["country"].tolist() == list(codes)
    for got, want in zip(table["admin1"], admin1):
        if want is not None:
            assert got == want
    assert table.loc[0, "city"] == "Paris" and table.loc[0, "country_name"] == "France"
    sea = locate(0.0, -140.0).iloc[0]
    assert sea.isna().all()


@pytest.mark.parametrize("bad", [(np.nan, 0.0), (91.0, 0.0), (0.0, 181.0)])
def test_bad_coordinates_fail_clearly(bad):
    with pytest.raises(InputError, match="lat|lon"):
        country_of(*bad)
    with pytest.raises(InputError):
        locate(*bad)


def test_admin_level0_is_countries():
    areas = admin_areas(0)
    assert list(areas.columns) == ["area_id", "country", "admin1", "admin2", "geometry"]
    assert areas["country"].tolist() == countries()["iso_a2"].tolist()


def test_real_admin1_at_state_capitals_of_every_continent():
    lat, lon, codes, names, iso = map(list, zip(*CAPITALS))
    table = locate(lat, lon)
    assert table["country"].tolist() == codes
    assert table["admin1"].tolist() == names and table["admin1_code"].tolist() == iso


def test_real_admin1_either_side_of_a_state_line():
    # Kansas City, Kansas and Kansas City, Missouri: 4 km apart across the state line
    table = locate([39.1141, 39.0997], [-94.6275, -94.5786])
    assert table["admin1"].tolist() == ["Kansas", "Missouri"]
    assert table["admin1_code"].tolist() == ["US-KS", "US-MO"]
    assert table["admin2"].tolist() == ["Wyandotte County", "Jackson County"]  # admin-2 nests in the admin-1


def test_a_coastal_town_outside_the_simplified_outline_takes_the_nearest_unit():
    from pigeon.geography._admin1 import admin1_index

    lat, lon = np.array([6.45407]), np.array([3.39467])  # Lagos Island, on the lagoon
    assert admin1_index(lat, lon, np.array(["NG"]), max_coast_km=0.0).tolist() == [-1]
    row = locate(lat, lon).iloc[0]
    assert (row["country"], row["admin1"], row["admin1_code"]) == ("NG", "Lagos", "NG-LA")
    # the tolerance is the country's: open sea 60 km out gets no unit and no country
    far = locate(*destination_point(6.45407, 3.39467, 180.0, 60.0)).iloc[0]
    assert far.isna().all()


def test_real_admin1_areas():
    areas = admin_areas(1)
    assert list(areas.columns) == ["area_id", "country", "admin1", "admin2", "admin1_code", "geometry"]
    assert areas["area_id"].is_unique and areas.geometry.is_valid.all() and areas["admin2"].isna().all()
    assert len(areas) > 4500 and areas["admin1_code"].notna().mean() > 0.8
    assert shapely.coverage_is_valid(areas.geometry.to_numpy())  # no overlaps
    lat, lon, codes, admin1 = zip(*KNOWN)
    hit_pt, hit_area = areas.sindex.query(shapely.points(lon, lat), predicate="within")
    found = dict(zip(hit_pt, hit_area))
    for i, (code, name) in enumerate(zip(codes, admin1)):
        row = areas.iloc[found[i]]
        assert row["country"] == code
        if name is not None:
            assert row["admin1"] == name
    by_country = areas.groupby("country").size()
    assert by_country["US"] == 51 and by_country["DE"] == 16 and by_country["FR"] == 102  # + Clipperton
    # the units of a country cover it, up to the simplification of their coasts
    fr = areas[areas["country"] == "FR"]
    france = countries().set_index("iso_a2").geometry["FR"]
    assert shapely.area(fr.geometry.to_numpy()).sum() == pytest.approx(france.area, rel=0.02)
    assert areas["admin1"].isna().sum() <= 3  # a country without units (not inside another's) is one area


def test_derived_admin2_nests_in_admin1(admin_cache):
    areas = admin_areas(2, cache=admin_cache)
    assert any((admin_cache / "geography").glob("admin2_*.parquet"))
    assert areas["area_id"].is_unique and areas["admin1"].notna().mean() > 0.99
    paris = areas.iloc[areas.sindex.query(shapely.points(2.3522, 48.8566), predicate="within")[0]]
    assert (paris["country"], paris["admin1"], paris["admin2"], paris["admin1_code"]) == ("FR", "Paris", "Paris",
                                                                                         "FR-75C")
    assert paris["area_id"] == "FR/Paris/Paris"
    level1 = admin_areas(1)
    assert len(areas) > 4 * len(level1)
    # every admin-2 area lies inside its own admin-1 unit: none crosses an admin-1 border
    unit = level1.set_index("area_id").geometry
    parent = (areas["country"] + "/" + areas["admin1"].fillna("?")).to_numpy()
    outside = shapely.area(shapely.difference(areas.geometry.to_numpy(), unit.loc[parent].to_numpy()))
    assert outside.max() < 1e-6
    # the admin-2 areas of a unit tile it
    sums = pd.Series(shapely.area(areas.geometry.to_numpy())).groupby(parent).sum()
    np.testing.assert_allclose(sums.to_numpy(), shapely.area(unit.loc[sums.index].to_numpy()), rtol=1e-6)
    again = admin_areas(2, cache=admin_cache)  # loading back from the cache gives the same table
    assert again["area_id"].tolist() == areas["area_id"].tolist()


def test_admin_level_must_be_valid():
    with pytest.raises(InputError, match="0, 1 or 2"):
        admin_areas(3)


def _write_gadm(path):
    import geopandas as gpd

    def box(x0, y0, x1, y1):
        return shapely.box(x0, y0, x1, y1)

    adm0 = gpd.GeoDataFrame({"GID_0": ["FRA", "XKO"], "COUNTRY": ["France", "Kosovo"]},
                            geometry=[box(0, 40, 10, 50), box(20, 42, 21, 43)], crs="EPSG:4326")
    adm1 = gpd.GeoDataFrame({"GID_0": ["FRA", "FRA"], "COUNTRY": ["France"] * 2, "GID_1": ["FRA.1_1", "FRA.2_1"],
                             "NAME_1": ["Nord", "Sud"]},
                            geometry=[box(0, 45, 10, 50), box(0, 40, 10, 45)], crs="EPSG:4326")
    adm2 = gpd.GeoDataFrame({"GID_0": ["FRA"] * 2, "GID_1": ["FRA.1_1"] * 2, "NAME_1": ["Nord"] * 2,
                             "GID_2": ["FRA.1.1_1", "FRA.1.2_1"], "NAME_2": ["Ouest", "Est"]},
                            geometry=[box(0, 45, 5, 50), box(5, 45, 10, 50)], crs="EPSG:4326")
    for name, layer in (("ADM_0", adm0), ("ADM_1", adm1), ("ADM_2", adm2)):
        layer.to_file(path, layer=name, driver="GPKG")


def test_gadm_geopackage(tmp_path):
    path = tmp_path / "gadm_410-levels.gpkg"
    _write_gadm(path)
    level0 = admin_areas(0, boundaries=path)
    assert level0["country"].tolist() == ["FR", "XK"] and level0["area_id"].tolist() == ["FRA", "XKO"]
    level2 = admin_areas(2, boundaries=path)
    assert list(level2.columns) == ["area_id", "country", "admin1", "admin2", "geometry"]
    assert level2["area_id"].tolist() == ["FRA.1.1_1", "FRA.1.2_1"]
    assert level2["admin1"].tolist() == ["Nord", "Nord"] and level2["admin2"].tolist() == ["Ouest", "Est"]
    assert level2.crs.to_epsg() == 4326
    assert admin_areas(1, boundaries=path)["admin2"].isna().all()


def test_gadm_errors(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="GADM"):
        admin_areas(1, boundaries=tmp_path / "missing.gpkg")
    junk = tmp_path / "junk.gpkg"
    junk.write_text("not a geopackage")
    with pytest.raises(InputError, match="GeoPackage"):
        admin_areas(1, boundaries=junk)
