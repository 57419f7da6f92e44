"""Semantic geocells: the reference's invariants on the toy world (see conftest), contiguity, the antimeridian."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from tests.support.cells import CITY, EMPTY_AA, ISLAND, MAX_SIZE, MIN_SIZE, make_points


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


def test_default_cells_keep_their_bounds_on_a_skewed_set(toy_areas):
    """A uniform crowd (no clusters for OPTICS) in one area: the paper's rules leave it whole, the default cuts it."""
    from pigeon.cells import GeoCells

    rng = np.random.default_rng(3)
    lat, lon = make_points(seed=2)
    lat, lon = np.r_[lat, rng.uniform(7.6, 9.9, 900)], np.r_[lon, rng.uniform(0.1, 2.4, 900)]  # area AA/W/0-3
    paper = GeoCells.build(lat, lon, min_size=MIN_SIZE, max_size=MAX_SIZE, areas=toy_areas, rules="paper")
    bounded = GeoCells.build(lat, lon, min_size=MIN_SIZE, max_size=MAX_SIZE, areas=toy_areas)
    assert paper.meta["config"]["rules"] == "paper" and bounded.meta["config"]["rules"] == "bounded"
    assert (paper.table["n_train"] > 1.5 * MAX_SIZE).any()
    sizes = bounded.table["n_train"]
    assert (sizes > 1.5 * MAX_SIZE).mean() <= 0.02 and (sizes > MAX_SIZE).sum() == 0
    assert len(bounded) > len(paper)


def test_cells_stay_inside_admin1_unless_a_unit_is_too_small():
    """X holds two full cells; Y (5 points) cannot stand alone and Z (no point) is empty: only they cross, named."""
    import geopandas as gpd

    from pigeon.cells import GeoCells

    shapes = {("X", "x1"): shapely.box(0, 0, 1, 1), ("X", "x2"): shapely.box(1, 0, 2, 1),
              ("Y", "y1"): shapely.box(2, 0, 3, 1), ("Z", "z1"): shapely.box(3, 0, 4, 1)}
    areas = gpd.GeoDataFrame({"country": "CC", "admin1": [k[0] for k in shapes], "admin2": [k[1] for k in shapes]},
                             geometry=list(shapes.values()), crs="EPSG:4326")
    rng = np.random.default_rng(0)
    lon = np.r_[rng.uniform(0.05, 0.95, 40), rng.uniform(1.05, 1.95, 40), rng.uniform(2.05, 2.95, 5)]
    lat = rng.uniform(0.05, 0.95, len(lon))
    cells = GeoCells.build(lat, lon, min_size=MIN_SIZE, max_size=MAX_SIZE, areas=areas)
    cfg = cells.meta["config"]
    assert len(cells) == 2 and cfg["cells_across_admin1"] == 1
    merges = cfg["admin1_merges"]
    assert merges["empty areas attached to a cell of another admin-1 (their admin-1 holds no training point)"] == 1
    assert sum(merges.values()) == 2 and any(k.startswith("small cells fused into (d)") and v == 1
                                             for k, v in merges.items())
    # X's two cells stay X's own
    x_only = cells.table[~cells.table.geometry.intersects(shapely.box(2.01, 0.01, 3.99, 0.99))]
    assert len(x_only) == 1 and x_only["admin1"].item() == "X"


def test_toy_world_cells_never_cross_admin1(semantic):
    cfg = semantic.meta["config"]
    assert cfg["cells_across_admin1"] == 0 and not any(cfg["admin1_merges"].values())


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


def test_cells_on_interleaved_areas_are_one_part_plus_islands():
    """Fragmented admin areas (interleaved places) still give cells that are one region plus islands."""
    import geopandas as gpd

    from pigeon.cells import GeoCells, cell_stats
    from pigeon.geography._topology import regions
    from tests.support.maps import INTERLEAVED_LAND, fragmented_areas

    areas = fragmented_areas()
    assert (regions(areas.geometry.to_numpy())["region"] > 0).any()
    neighbour = gpd.GeoDataFrame({"country": ["BB"], "admin1": ["R"], "admin2": ["all"]},
                                 geometry=[shapely.box(4, 0, 6, 4)], crs="EPSG:4326")
    areas = gpd.GeoDataFrame(pd.concat([areas, neighbour], ignore_index=True), crs="EPSG:4326")
    rng = np.random.default_rng(0)
    lon, lat = np.r_[rng.uniform(0, 6, 900), 1.2, 1.3], np.r_[rng.uniform(0, 4, 900), 5.2, 5.3]
    cells = GeoCells.build(lat, lon, min_size=30, max_size=60, areas=areas, rules="bounded")
    stats = cell_stats(cells, lat, lon)
    assert stats["cells_with_exclaves"] == 0 and stats["exclave_share"] == 0.0
    assert stats["cells_with_islands"] >= 1  # the island stays in the cell of its area
    # the cells tile the land of both countries without overlap
    geoms = cells.table.geometry.to_numpy()
    land = shapely.union_all([INTERLEAVED_LAND, shapely.box(4, 0, 6, 4)])
    assert np.isclose(shapely.area(geoms).sum(), land.area)
    assert shapely.symmetric_difference(shapely.union_all(geoms), land).area < 1e-9
    np.testing.assert_array_equal(cells.assign(lat, lon)[:900], cells.train_labels[:900])


def antimeridian_areas():
    """Country XX across ±180: W (178-180 E) borders E (178-180 W) on the line; islands either side and far west."""
    import geopandas as gpd

    shapes = {"W": shapely.box(178, 0, 180, 1), "E": shapely.box(-180, 0, -178, 1),
              "I1": shapely.box(179.5, 2, 179.8, 2.3), "I2": shapely.box(-179.8, 2, -179.5, 2.3),
              "F": shapely.box(170, 2, 170.3, 2.3)}
    return gpd.GeoDataFrame({"country": "XX", "admin1": "R", "admin2": list(shapes)}, geometry=list(shapes.values()),
                            crs="EPSG:4326")


def test_fusion_and_cells_across_the_antimeridian():
    """W (5 points) fuses with E across the line, island I1 (3) with I2 (40): the old planar search found neither."""
    from pigeon.cells import GeoCells, cell_stats
    from pigeon.geo import spherical_mean

    rng = np.random.default_rng(0)
    boxes = {"W": (178, 0, 180, 1, 5), "E": (-180, 0, -178, 1, 40), "I1": (179.5, 2, 179.8, 2.3, 3),
             "I2": (-179.8, 2, -179.5, 2.3, 40), "F": (170, 2, 170.3, 2.3, 40)}
    lon = np.concatenate([rng.uniform(b[0] + 0.01, b[2] - 0.01, b[4]) for b in boxes.values()])
    lat = np.concatenate([rng.uniform(b[1] + 0.01, b[3] - 0.01, b[4]) for b in boxes.values()])
    cells = GeoCells.build(lat, lon, min_size=30, max_size=100, areas=antimeridian_areas())
    table = cells.table
    assert sorted(table["n_train"]) == [40, 43, 45]
    assert cells.meta["config"]["undersized_cells"] == []
    stats = cell_stats(cells)
    assert stats["multipart_cells"] == 1  # W+E is one region across the line; I1+I2 are two islands
    main = table.loc[table["n_train"] == 45].iloc[0]
    c_lat, c_lon = spherical_mean(lat[:45], lon[:45])
    assert np.isclose(main["centroid_lat"], c_lat) and np.isclose(main["centroid_lon"], c_lon)
    assert abs(main["centroid_lon"]) > 178  # by the line, not at lon 0
    km2 = table.geometry.to_crs("EPSG:6933").area.to_numpy() / 1e6
    w_e = 4 * 111.32 * 110.6  # 4 degrees of longitude by 1 of latitude at the equator, roughly
    assert abs(km2[table["n_train"] == 45][0] / w_e - 1) < 0.02


def test_fiji_cells_straddle_the_antimeridian_with_the_right_centroids_and_areas():
    """Fiji (Natural Earth, cut at ±180) with points around its towns: cells cross the line as one region."""
    from pigeon.cells import GeoCells, cell_stats
    from pigeon.geo import destination_point, spherical_mean
    from pigeon.geography import admin_areas, places

    fiji = admin_areas(0)
    fiji = fiji[fiji["country"] == "FJ"]
    towns = places()
    towns = towns[towns["cc"] == "FJ"]
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(towns), 600)
    lat, lon = destination_point(towns["lat"].to_numpy()[pick], towns["lon"].to_numpy()[pick],
                                 rng.uniform(0, 360, 600), rng.uniform(0, 3, 600))
    lon = np.r_[lon, -179.87, -179.85, 179.95, 179.97]  # Taveuni, on both sides of the line
    lat = np.r_[lat, -16.85, -16.9, -16.82, -16.88]
    cells = GeoCells.build(lat, lon, min_size=30, max_size=60, areas=fiji, rules="bounded")
    table = cells.table
    assert (table.geometry.bounds["minx"] >= -180).all() and (table.geometry.bounds["maxx"] <= 180).all()
    stats = cell_stats(cells, lat, lon)
    assert stats["cells_with_exclaves"] == 0
    fiji_km2 = fiji.to_crs("EPSG:6933").area.sum() / 1e6
    assert np.isclose(stats["area_km2"]["mean"] * len(cells), fiji_km2, rtol=1e-4)  # no gap, no overlap
    for i in range(len(cells)):
        member = cells.train_labels == i
        np.testing.assert_allclose(cells.centroids[i], spherical_mean(lat[member], lon[member]))
    assert (np.abs(cells.centroids[:, 1]) > 176).all()  # every centroid in Fiji, none near lon 0
    taveuni = cells.assign([-16.86, -16.86], [179.96, -179.86])
    assert taveuni[0] == taveuni[1]  # both sides of the line in one cell


def test_each_cell_is_named_after_the_unit_holding_most_of_its_points():
    """U1 (25 points) is too small alone and fuses into U0 (50 points); the fused cell is too large and is split
    again: the piece that holds most of U1 is named U1, not after the fused cell's majority."""
    import geopandas as gpd

    from pigeon.cells import GeoCells

    units = ["U0", "U1"]
    areas = gpd.GeoDataFrame({"country": "CC", "admin1": units, "admin2": units},
                             geometry=[shapely.box(i, 0, i + 1, 1) for i in range(2)], crs="EPSG:4326")
    rng = np.random.default_rng(4)
    lon = np.r_[rng.uniform(0.05, 0.95, 50), rng.uniform(1.05, 1.95, 25)]
    lat = rng.uniform(0.05, 0.95, len(lon))
    cells = GeoCells.build(lat, lon, min_size=MIN_SIZE, max_size=MAX_SIZE, areas=areas)
    assert len(cells) == 2 and cells.meta["config"]["cells_across_admin1"] >= 1
    unit = np.floor(lon).astype(int)
    for i, name in enumerate(cells.table["admin1"]):
        counts = np.bincount(unit[cells.train_labels == i], minlength=2)
        assert name == units[int(np.argmax(counts))], (i, name, counts)
    assert set(cells.table["admin1"]) == {"U0", "U1"}
