"""OPTICS + Voronoi splitting and the fast OPTICS ordering."""

from __future__ import annotations

import numpy as np
import shapely

from pigeon.cells import OPTICS_PARAMS_STREETVIEW


def blobs(seed: int = 0, lat0: float = 60.0):
    rng = np.random.default_rng(seed)
    centres = [(lat0, 10.0), (lat0 + 0.3, 10.2), (lat0 + 0.1, 10.8)]
    lat = np.concatenate([rng.normal(a, 0.02, 50) for a, _ in centres])
    lon = np.concatenate([rng.normal(b, 0.04, 50) for _, b in centres])
    return lat, lon


def test_fast_optics_matches_sklearn():
    from sklearn.cluster import OPTICS

    from pigeon.cells._optics import optics_xi

    rng = np.random.default_rng(1)
    x = np.round(np.concatenate([rng.normal(c, s, (150, 3)) for c, s in zip(rng.uniform(0, 10, (4, 3)),
                                                                          (0.3, 0.5, 1.0, 2.0))]), 2)
    for ms, xi in OPTICS_PARAMS_STREETVIEW:
        np.testing.assert_array_equal(optics_xi(x, ms, xi), OPTICS(min_samples=ms, xi=xi).fit(x).labels_)


def test_optics_rounds_carve_out_each_cluster():
    from pigeon.cells._split import split_oversized

    lat, lon = blobs()
    parent = shapely.box(9.0, 59.0, 12.0, 61.0)
    geoms, members, origin = split_oversized([parent], [np.arange(150)], lat, lon, min_size=30, max_size=60,
                                             optics_params=OPTICS_PARAMS_STREETVIEW, balance=False)
    assert sorted(tuple(np.unique(m // 50)) for m in members) == [(0,), (1,), (2,)]
    assert origin == [0, 0, 0]
    assert all(g.geom_type == "Polygon" for g in geoms)
    assert np.isclose(sum(g.area for g in geoms), parent.area)
    assert shapely.symmetric_difference(shapely.union_all(geoms), parent).area < 1e-9


def test_optics_uses_great_circle_distance_at_high_latitude():
    """At 80 deg N a degree of longitude is 19 km: clusters 1 deg of lon apart are close, not far apart."""
    from pigeon.cells._spatial import unit_xyz_km
    from pigeon.geo import haversine_km

    lat, lon = np.array([80.0, 80.0, 0.0]), np.array([0.0, 1.0, 0.0])
    xyz = unit_xyz_km(lat, lon)
    np.testing.assert_allclose(np.linalg.norm(xyz[0] - xyz[1]), haversine_km(80, 0, 80, 1), rtol=1e-3)


def test_median_cuts_bound_cells_without_structure():
    from pigeon.cells._split import split_oversized

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)  # uniform: OPTICS finds no clusters
    parent = shapely.box(0, 0, 1, 1)
    geoms, members, _ = split_oversized([parent], [np.arange(500)], lat, lon, min_size=30, max_size=60,
                                        optics_params=OPTICS_PARAMS_STREETVIEW)
    sizes = np.array([len(m) for m in members])
    assert (sizes <= 60).all() and (sizes >= 30).all() and sizes.sum() == 500
    assert np.isclose(sum(g.area for g in geoms), 1.0)
    assert all(g.geom_type == "Polygon" for g in geoms)
    points = shapely.points(lon, lat)
    for g, m in zip(geoms, members):  # shapes and memberships agree
        assert shapely.covers(g, points[m]).all()


def test_large_cells_are_sampled_deterministically():
    from pigeon.cells._split import split_oversized

    lat, lon = blobs()
    lat, lon = np.repeat(lat, 4) + np.tile([0, 1e-4, 2e-4, 3e-4], 150), np.repeat(lon, 4)
    parent = shapely.box(9.0, 59.0, 12.0, 61.0)
    # 600 points, OPTICS on 200 of them: min_samples 45 acts as 15 on the sample
    kwargs = dict(min_size=120, max_size=240, optics_params=[(45, 0.015)], sample_cap=200, seed=3, balance=False)
    first = split_oversized([parent], [np.arange(600)], lat, lon, **kwargs)
    second = split_oversized([parent], [np.arange(600)], lat, lon, **kwargs)
    assert [len(m) for m in first[1]] == [len(m) for m in second[1]]
    assert sorted(tuple(np.unique(m // 200)) for m in first[1]) == [(0,), (1,), (2,)]


def test_points_off_the_cell_shape_are_split_too():
    """Coastal points at sea (outside the cell's land shape) still follow their group, so cells stay bounded."""
    from pigeon.cells._split import split_oversized

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(0, 1, 400), np.concatenate([rng.uniform(0, 1, 100), rng.uniform(1.5, 3, 300)])
    geoms, members, _ = split_oversized([shapely.box(0, 0, 1, 1)], [np.arange(400)], lat, lon, min_size=30,
                                        max_size=60, optics_params=OPTICS_PARAMS_STREETVIEW)
    sizes = np.array([len(m) for m in members])
    assert sizes.sum() == 400 and (sizes <= 60).all()
    assert np.isclose(sum(g.area for g in geoms), 1.0)
