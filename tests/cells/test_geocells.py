"""GeoCells: naive cells, assign, distances, save/load, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from pigeon.errors import ArtifactNotFoundError, InputError, PigeonError, UnknownNameError
from tests.support.cells import MAX_SIZE, MIN_SIZE


def brute_force_assign(table, lat, lon):
    """The covering cell, else the cell whose outline (densified to ~0.5 km) comes closest in great-circle km."""
    from pigeon.geo import haversine_km

    outlines = [shapely.get_coordinates(shapely.segmentize(shapely.boundary(g), 0.005)) for g in table.geometry]
    out = []
    for la, lo in zip(lat, lon):
        p = shapely.Point(lo, la)
        hits = [i for i, g in enumerate(table.geometry) if g.covers(p)]
        out.append(hits[0] if hits else int(np.argmin([haversine_km(la, lo, c[:, 1], c[:, 0]).min()
                                                          for c in outlines])))
    return np.asarray(out)


@pytest.fixture(scope="module")
def naive(toy_points, toy_areas):
    from pigeon.cells import GeoCells

    return GeoCells.build(*toy_points, method="naive", max_size=MAX_SIZE, areas=toy_areas)


def test_naive_cells_are_rectangles_that_tile_the_bounding_box(naive, toy_points):
    lat, lon = toy_points
    table = naive.table
    assert (table["n_train"] <= MAX_SIZE).all() and (table["n_train"] > 0).all()
    assert np.allclose(shapely.area(table.geometry.to_numpy()), shapely.area(shapely.envelope(table.geometry)))
    assert shapely.area(table.geometry.to_numpy()).sum() <= (np.ptp(lat) * np.ptp(lon)) + 1e-9
    np.testing.assert_array_equal(naive.assign(lat, lon), naive.train_labels)
    assert set(table["country"]) <= {"AA", "BB"}  # names from the areas given


def test_naive_split_halves_the_longer_side():
    from pigeon.cells._naive import naive_boxes

    lat, lon = np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 4.0, 0.0, 4.0])  # box 1 x 4 deg: cut lon at 2
    boxes, labels = naive_boxes(lat, lon, max_size=2)
    np.testing.assert_array_equal(boxes, [[0, 0, 1, 2], [0, 2, 1, 4]])
    np.testing.assert_array_equal(labels, [0, 1, 0, 1])
    boxes, labels = naive_boxes(np.zeros(5), np.zeros(5), max_size=2)  # one location cannot be split
    assert len(boxes) == 1 and (labels == 0).all()


@pytest.mark.parametrize("which", ["semantic", "naive"])
def test_assign_agrees_with_brute_force(which, semantic, naive):
    cells = semantic if which == "semantic" else naive
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-3, 13, 300), rng.uniform(-3, 33, 300)  # land, borders and sea
    lat, lon = np.append(lat, [5.0, 2.5]), np.append(lon, [10.0, 2.5])  # on a border and a corner
    np.testing.assert_array_equal(cells.assign(lat, lon), brute_force_assign(cells.table, lat, lon))


def test_training_points_assign_to_their_own_cell(semantic, toy_points):
    agree = semantic.assign(*toy_points) == semantic.train_labels
    assert agree.mean() > 0.99


def test_distances_km(semantic):
    from pigeon.geo import haversine_km

    d = semantic.distances_km([1.0, 5.0], [2.0, 15.0])
    assert d.shape == (2, len(semantic))
    np.testing.assert_allclose(d[1], haversine_km(5.0, 15.0, semantic.centroids[:, 0], semantic.centroids[:, 1]))


def test_save_load_round_trip(semantic, tmp_path):
    from pigeon.cells import GeoCells

    semantic.save(tmp_path / "cells")
    assert (tmp_path / "cells" / "cells.parquet").is_file() and (tmp_path / "cells" / "meta.json").is_file()
    back = GeoCells.load(tmp_path / "cells")
    assert len(back) == len(semantic) and back.train_labels is None
    assert back.table.drop(columns="geometry").equals(semantic.table.drop(columns="geometry"))
    assert shapely.equals(back.table.geometry.to_numpy(), semantic.table.geometry.to_numpy()).all()
    np.testing.assert_array_equal(back.centroids, semantic.centroids)
    assert back.meta["kind"] == "geocells" and back.meta["config"]["min_size"] == MIN_SIZE
    lat, lon = np.array([1.0, 4.0, 30.5]), np.array([1.0, 15.0, 0.5])
    np.testing.assert_array_equal(back.assign(lat, lon), semantic.assign(lat, lon))


def test_the_preset_and_options_reach_the_build(toy_points, toy_areas):
    from pigeon.cells import CellConfig, GeoCells
    from pigeon.presets import PRESETS

    lat, lon = toy_points
    photo = PRESETS["photo"].cells["min_size"]
    assert len(lat) < photo
    with pytest.raises(InputError, match=f"fewer than min_size={photo}"):
        GeoCells.build(lat, lon, preset="photo", areas=toy_areas)
    cells = GeoCells.build(lat, lon, preset="photo", min_size=10, max_size=50, method="naive", areas=toy_areas)
    config = cells.meta["config"]
    assert (config["preset"], config["min_size"], config["max_size"], config["method"]) == ("photo", 10, 50, "naive")
    same = GeoCells.build(lat, lon, CellConfig(method="naive", min_size=10, max_size=50), areas=toy_areas)
    assert same.table["n_train"].tolist() == cells.table["n_train"].tolist()
    with pytest.raises(InputError, match="either a CellConfig or a preset"):
        GeoCells.build(lat, lon, CellConfig(), min_size=3)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(lat=[np.nan, 1.0], lon=[0.0, 1.0]), InputError, "finite"),
    (dict(lat=[], lon=[]), InputError, "no training points"),
    (dict(lat=[1.0] * 5, lon=[1.0] * 5, min_size=30), InputError, "fewer than min_size"),
    (dict(lat=[1.0] * 5, lon=[1.0] * 5, min_size=4, max_size=2), InputError, "below min_size"),
    (dict(lat=[1.0] * 5, lon=[1.0] * 5, method="hexagons"), UnknownNameError, "geocell method"),
    (dict(lat=[1.0] * 50, lon=[1.0] * 50, boundaries="/nonexistent/gadm.gpkg"), ArtifactNotFoundError, "not found"),
])
def test_bad_input_fails_clearly(kwargs, error, message):
    from pigeon.cells import GeoCells

    with pytest.raises(error, match=message):
        GeoCells.build(**kwargs)


def test_unreadable_boundaries_and_missing_cells(tmp_path):
    from pigeon.cells import GeoCells

    bad = tmp_path / "areas.geojson"
    bad.write_text("not json")
    with pytest.raises(PigeonError, match="cannot read admin areas"):
        GeoCells.build([1.0] * 50, [1.0] * 50, boundaries=bad)
    with pytest.raises(ArtifactNotFoundError, match="pigeon cells build"):
        GeoCells.load(tmp_path / "nothing")


def test_gadm_boundaries_fall_back_to_coarser_levels(tmp_path):
    """Countries without admin-2 polygons in a GADM file use admin-1, then the country polygon."""
    import geopandas as gpd
    from shapely.geometry import box

    from pigeon.cells import read_areas

    path = tmp_path / "gadm.gpkg"
    layers = {
        "ADM_0": {"GID_0": ["FRA", "DEU", "ITA"], "geometry": [box(0, 0, 1, 1), box(1, 0, 2, 1), box(2, 0, 3, 1)]},
        "ADM_1": {"GID_0": ["FRA", "DEU"], "GID_1": ["FRA.1", "DEU.1"], "NAME_1": ["Nord", "Bayern"],
                  "geometry": [box(0, 0, 1, 1), box(1, 0, 2, 1)]},
        "ADM_2": {"GID_0": ["FRA", "FRA"], "GID_2": ["FRA.1.1", "FRA.1.2"], "NAME_1": ["Nord", "Nord"],
                  "NAME_2": ["Lille", "Douai"], "geometry": [box(0, 0, 0.5, 1), box(0.5, 0, 1, 1)]},
    }
    for name, data in layers.items():
        gpd.GeoDataFrame(data, crs="EPSG:4326").to_file(path, layer=name, driver="GPKG")
    areas = read_areas(path)
    assert sorted(areas["country"]) == ["DE", "FR", "FR", "IT"]
    assert set(areas.loc[areas["country"] == "FR", "admin2"]) == {"Lille", "Douai"}
    assert areas.loc[areas["country"] == "DE", "admin1"].item() == "Bayern"


def test_naive_cells_across_the_antimeridian():
    """Points on both sides of ±180 get boxes that cross the line (two parts, one region), not a world band."""
    from pigeon.cells import GeoCells, cell_stats
    from pigeon.geo import spherical_mean

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-17, -16, 200), rng.uniform(179, 181, 200)
    lon = np.where(lon > 180, lon - 360, lon)
    one = GeoCells.build(lat, lon, method="naive", max_size=500)
    geom = one.table.geometry.iloc[0]
    assert geom.geom_type == "MultiPolygon" and geom.bounds[0] == -180 and geom.bounds[2] == 180
    box_km2 = one.table.geometry.to_crs("EPSG:6933").area.iloc[0] / 1e6
    assert abs(box_km2 / ((lat.max() - lat.min()) * (lon[lon < 0].max() + 360 - lon[lon > 0].min()) * 111.32 ** 2
                          * np.cos(np.radians(16.5))) - 1) < 0.02
    np.testing.assert_allclose(one.centroids[0], spherical_mean(lat, lon))
    many = GeoCells.build(lat, lon, method="naive", max_size=30)
    assert cell_stats(many)["multipart_cells"] == 0  # cells cut by the line are still one region each
    assert np.isclose(shapely.area(many.table.geometry.to_numpy()).sum(), shapely.area(geom))
    np.testing.assert_array_equal(many.assign(lat, lon), many.train_labels)


def test_plot_draws_cells_cut_by_the_antimeridian_at_both_edges():
    """A cell straddling ±180 is drawn as two patches at the edges of the map, never as a band across it."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection

    from pigeon.cells import GeoCells
    from pigeon.cells._report import draw_cells

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-17, -16, 100), rng.uniform(179, 181, 100)
    cells = GeoCells.build(lat, np.where(lon > 180, lon - 360, lon), method="naive", max_size=500)
    fig, ax = plt.subplots()
    try:
        draw_cells(ax, cells)
        paths = [p for c in ax.collections if isinstance(c, PatchCollection) for p in c.get_paths()]
        rings = [ring for p in paths for ring in p.to_polygons()]  # a multi-part cell is one path of several rings
    finally:
        plt.close(fig)
    assert len(paths) == 1 and len(rings) == 2
    xs = sorted((ring[:, 0].min(), ring[:, 0].max()) for ring in rings)
    assert xs[0][0] == -180 and xs[0][1] < -178.9 and xs[1][0] > 178.9 and xs[1][1] == 180


def test_cell_areas_are_recorded_and_read_back_without_the_shapes(semantic, tmp_path):
    import geopandas as gpd

    from pigeon.cells import GeoCells

    table = semantic.table
    measured = gpd.GeoSeries(table.geometry, crs="EPSG:4326").to_crs("EPSG:6933").area.to_numpy() / 1e6
    np.testing.assert_allclose(semantic.areas_km2, measured, rtol=1e-9)
    assert (semantic.areas_km2 > 0).all()
    semantic.save(tmp_path / "cells")
    loaded = GeoCells.load(tmp_path / "cells")
    np.testing.assert_allclose(loaded.areas_km2, measured, rtol=1e-9)
    assert loaded._table.geometry.isna().all()  # read from the column: the shapes were never loaded
    older = GeoCells(table.drop(columns="area_km2"), semantic.meta)  # cells saved before areas were recorded
    np.testing.assert_allclose(older.areas_km2, measured, rtol=1e-9)
