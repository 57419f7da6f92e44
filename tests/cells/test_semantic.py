"""Semantic geocells on the toy world (see conftest): the reference's invariants, with known answers."""

from __future__ import annotations

import numpy as np
import shapely

from tests.cells.conftest import CITY, EMPTY_AA, ISLAND, MAX_SIZE, MIN_SIZE, make_points


def test_every_training_point_is_in_exactly_one_cell(semantic, toy_points):
    lat, _ = toy_points
    labels = semantic.train_labels
    assert labels.shape == lat.shape and labels.min() >= 0 and labels.max() < len(semantic)
    np.testing.assert_array_equal(np.bincount(labels, minlength=len(semantic)), semantic.table["n_train"])


def test_cells_are_contiguous_and_never_cross_a_border(semantic, toy_areas):
    table = semantic.table
    assert (table.geometry.geom_type == "Polygon").all()
    for code in ("AA", "BB"):
        other = shapely.union_all(toy_areas.geometry[toy_areas["country"] != code].to_numpy())
        mine = table.geometry[table["country"] == code]
        assert len(mine) > 0
        assert np.allclose(shapely.area(shapely.intersection(mine.to_numpy(), other)), 0.0)


def test_cells_tile_the_land_without_overlap(semantic, toy_areas):
    geoms = semantic.table.geometry.to_numpy()
    land = shapely.union_all(toy_areas.geometry.to_numpy())
    assert np.isclose(shapely.area(geoms).sum(), land.area)  # no overlap ...
    assert np.isclose(shapely.union_all(geoms).area, land.area)  # ... and no gap, empty areas included
    empty = toy_areas[toy_areas["admin2"].isin([f"{i}-{j}" for i, j in EMPTY_AA]) & (toy_areas["country"] == "AA")]
    assert len(empty) == len(EMPTY_AA)
    assert not (semantic.table["admin2"].isin(empty["admin2"]) & (semantic.table["country"] == "AA")).any()


def test_sizes_within_bounds_except_the_isolated_island(semantic):
    table = semantic.table
    island = table.geometry.within(shapely.box(*ISLAND).buffer(1e-9))
    assert island.sum() == 1 and table.loc[island, "n_train"].item() == 5
    rest = table.loc[~island, "n_train"]
    assert rest.between(MIN_SIZE, MAX_SIZE).all(), rest.tolist()
    cfg = semantic.meta["config"]
    assert cfg["undersized_cells"] == table.index[island].tolist() and cfg["oversized_cells"] == []


def test_dense_city_is_split_and_sparse_country_fused(semantic, toy_points):
    lat, lon = toy_points
    table = semantic.table
    in_city = table.geometry.within(shapely.box(*CITY).buffer(1e-9))
    n_city = int(((lon > CITY[0]) & (lon < CITY[2]) & (lat > CITY[1]) & (lat < CITY[3])).sum())
    assert in_city.sum() >= int(np.ceil(n_city / MAX_SIZE))
    assert np.isclose(shapely.union_all(table.geometry[in_city].to_numpy()).area, shapely.box(*CITY).area)
    bb = table[table["country"] == "BB"]
    assert 1 <= len(bb) <= 64 // MIN_SIZE  # 16 areas of 4 points each fused into at most 2 cells
    assert (bb["n_train"] >= MIN_SIZE).all()


def test_names_and_centroids(semantic, toy_points, toy_areas):
    from pigeon.geo import spherical_mean

    lat, lon = toy_points
    labels = semantic.train_labels
    for i in (0, len(semantic) - 1):
        np.testing.assert_allclose(semantic.centroids[i], spherical_mean(lat[labels == i], lon[labels == i]))
    assert set(semantic.table["country"]) == {"AA", "BB"}
    assert set(semantic.table["admin1"]) <= set(toy_areas["admin1"])
    np.testing.assert_array_equal(semantic.table["cell_id"], np.arange(len(semantic)))


def test_deterministic_for_a_seed(semantic, toy_points, toy_areas):
    from pigeon.cells import GeoCells

    again = GeoCells.build(*toy_points, min_size=MIN_SIZE, max_size=MAX_SIZE, areas=toy_areas, seed=0)
    assert again.table.drop(columns="geometry").equals(semantic.table.drop(columns="geometry"))
    assert shapely.equals(again.table.geometry.to_numpy(), semantic.table.geometry.to_numpy()).all()


def test_points_outside_every_area_take_the_nearest(toy_areas):
    from pigeon.cells import GeoCells

    lat, lon = make_points(seed=1)
    lat, lon = np.append(lat, -0.5), np.append(lon, 15.0)  # just south of BB, at sea
    cells = GeoCells.build(lat, lon, min_size=MIN_SIZE, max_size=MAX_SIZE, areas=toy_areas)
    assert cells.table.loc[cells.train_labels[-1], "country"] == "BB"
