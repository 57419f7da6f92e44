"""Splitting large cells: the paper's rules on hand-made point sets, OPTICS, median cuts, the antimeridian."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from pigeon.cells import OPTICS_PARAMS_STREETVIEW
from tests.support.cells import as_cells, sampled_cells


def blobs(seed: int = 0, lat0: float = 60.0):
    rng = np.random.default_rng(seed)
    centres = [(lat0, 10.0), (lat0 + 0.3, 10.2), (lat0 + 0.1, 10.8)]
    lat = np.concatenate([rng.normal(a, 0.02, 50) for a, _ in centres])
    lon = np.concatenate([rng.normal(b, 0.04, 50) for _, b in centres])
    return lat, lon


def split_with_labels(parent, lat, lon, labels, min_size=30, max_size=60):
    """``split_cell`` with hand-made cluster labels in place of OPTICS, so that only the rules decide."""
    from pigeon.cells._split import split_cell

    return split_cell(parent, lat, lon, lambda la, lo, n: np.asarray(labels), min_size, max_size)


def assert_partition(children, parent, n):
    """Children tile the parent, every point is in one child and inside that child's shape."""
    geoms = [g for g, _ in children]
    assert np.isclose(sum(g.area for g in geoms), parent.area)
    assert shapely.symmetric_difference(shapely.union_all(geoms), parent).area < 1e-9
    assert sorted(np.concatenate([m for _, m in children]).tolist()) == list(range(n))


def test_doughnut_carves_out_the_cluster_with_its_holes_filled():
    rng = np.random.default_rng(1)
    ring = np.linspace(0, 2 * np.pi, 35, endpoint=False)
    # a cluster of 40 in the middle, a ring of 35 noise points around it and one noise point inside the cluster
    lon = np.r_[rng.uniform(1.3, 1.7, 40), 1.5 + 1.2 * np.cos(ring), 1.5]
    lat = np.r_[rng.uniform(1.3, 1.7, 40), 1.5 + 1.2 * np.sin(ring), 1.5]
    labels = np.r_[np.zeros(40, int), -np.ones(36, int)]
    parent = shapely.box(0, 0, 3, 3)
    children = split_with_labels(parent, lat, lon, labels)
    assert_partition(children, parent, 76)
    (rest, rest_idx), (cluster, cluster_idx) = sorted(children, key=lambda c: -c[0].area)
    assert cluster.geom_type == "Polygon" and len(cluster.interiors) == 0
    assert rest.geom_type == "Polygon" and len(rest.interiors) == 1  # the doughnut
    assert sorted(cluster_idx) == [*range(40), 75]  # the noise point in the cluster's hole joins it
    assert sorted(rest_idx) == list(range(40, 75))


@pytest.mark.parametrize("n_ring", [20, 70])
def test_doughnut_needs_noise_between_min_and_max_size(n_ring):
    """Noise below min_size is not a group (one cluster alone does not split); above max_size, no doughnut."""
    rng = np.random.default_rng(1)
    ring = np.linspace(0, 2 * np.pi, n_ring, endpoint=False)
    lon = np.r_[rng.uniform(1.3, 1.7, 40), 1.5 + 1.2 * np.cos(ring)]
    lat = np.r_[rng.uniform(1.3, 1.7, 40), 1.5 + 1.2 * np.sin(ring)]
    labels = np.r_[np.zeros(40, int), -np.ones(n_ring, int)]
    assert split_with_labels(shapely.box(0, 0, 3, 3), lat, lon, labels) is None


def test_two_clusters_noise_joins_the_nearest_centroid_then_the_first_is_carved_out():
    rng = np.random.default_rng(2)
    # cluster A around x=0.5; cluster B around x=3.7 plus one outlying member at x=2.0;
    # noise: 10 points at x~1.2 and one at x=1.75, whose nearest *point* (B's at 2.0) is in B
    # but whose nearest *centroid* is A's
    lon = np.r_[rng.uniform(0.3, 0.7, 35), rng.uniform(3.6, 3.8, 34), 2.0, rng.uniform(1.1, 1.3, 10), 1.75]
    lat = np.r_[rng.uniform(0.3, 0.7, 35), rng.uniform(0.3, 0.7, 34), 0.5, rng.uniform(0.2, 0.8, 10), 0.5]
    labels = np.r_[np.zeros(35, int), np.ones(35, int), -np.ones(11, int)]
    parent = shapely.box(0, 0, 4, 1)
    children = split_with_labels(parent, lat, lon, labels)
    assert_partition(children, parent, 81)
    first = next(m for _, m in children if 0 in m)
    assert sorted(first) == [*range(35), *range(70, 81)]  # A with all the noise, including the point at 1.75
    assert all(g.geom_type == "Polygon" for g, _ in children)


def test_three_clusters_take_the_voronoi_regions_of_their_centroids():
    from pigeon.geo import spherical_mean

    rng = np.random.default_rng(3)
    # a wide cluster 0, two compact ones; cluster 1 has a member at x=1.6, on cluster 0's side of the
    # bisector of the centroids (a Voronoi of the points would put the border next to it, at ~2.05)
    lon = np.r_[rng.uniform(0.1, 1.4, 35), rng.uniform(2.5, 2.7, 34), 1.6, rng.uniform(1.4, 1.6, 35), 0.2, 2.9]
    lat = np.r_[rng.uniform(0.1, 1.4, 35), rng.uniform(0.6, 0.8, 34), 0.7, rng.uniform(2.5, 2.7, 35), 2.8, 2.8]
    labels = np.r_[np.zeros(35, int), np.ones(35, int), np.full(35, 2), -1, -1]
    parent = shapely.box(0, 0, 3, 3)
    children = split_with_labels(parent, lat, lon, labels)
    assert_partition(children, parent, len(lat))
    assert len(children) == 3
    k = np.cos(np.radians(lat.mean()))  # the local plane of the cell
    centres = np.array([spherical_mean(lat[labels == c], lon[labels == c])[::-1] for c in range(3)]) * [k, 1]
    regions = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(centres),
                                                        extend_to=shapely.box(-10, -10, 10, 10), ordered=True))
    expected = [shapely.intersection(shapely.transform(r, lambda xy: xy / [k, 1]), parent) for r in regions]
    for geom, idx in children:
        c = int(np.bincount(labels[idx][labels[idx] >= 0]).argmax())
        assert shapely.symmetric_difference(geom, expected[c]).area < 1e-6
        assert shapely.covers(geom, shapely.points(lon[idx], lat[idx])).all()  # shapes and points agree
    assert 69 in next(m for _, m in children if 0 in m)  # cluster 1's member at x=1.6 lies in cluster 0's region


def test_dirty_split_gives_detached_parts_to_the_sibling_they_border():
    """The cluster band cuts the rest in two: the rest keeps its larger part, the smaller joins the band."""
    rng = np.random.default_rng(4)
    y = np.linspace(0.05, 0.95, 40)
    lon = np.r_[rng.uniform(1.1, 1.9, 40), rng.uniform(0.1, 0.6, 10), rng.uniform(2.4, 3.4, 25)]
    lat = np.r_[y, rng.uniform(0.05, 0.95, 35)]
    labels = np.r_[np.zeros(40, int), -np.ones(35, int)]
    parent = shapely.box(0, 0, 3.5, 1)
    children = split_with_labels(parent, lat, lon, labels)
    assert_partition(children, parent, 75)
    assert all(g.geom_type == "Polygon" for g, _ in children)
    band = next((g, m) for g, m in children if 0 in m)
    assert sorted(band[1]) == list(range(50))  # the band and the 10 points left of it
    assert band[0].bounds[0] == 0.0


def test_dirty_split_cleanup_keeps_islands():
    from pigeon.cells._split import dirty_split_cleanup

    a = shapely.union_all([shapely.box(0, 0, 2, 2), shapely.box(3, 0, 3.5, 0.5), shapely.box(5, 5, 5.5, 5.5)])
    b = shapely.box(2, 0.5, 4, 2)  # borders a's main part and the piece at (3, 0)
    new_a, new_b = dirty_split_cleanup([a, b])
    assert shapely.equals(new_a, shapely.union_all([shapely.box(0, 0, 2, 2), shapely.box(5, 5, 5.5, 5.5)]))
    assert shapely.equals(new_b, shapely.union_all([b, shapely.box(3, 0, 3.5, 0.5)]))


def test_fast_optics_matches_sklearn():
    from sklearn.cluster import OPTICS

    from pigeon.cells._optics import optics_xi

    rng = np.random.default_rng(1)
    x = np.round(np.concatenate([rng.normal(c, s, (150, 3)) for c, s in zip(rng.uniform(0, 10, (4, 3)),
                                                                          (0.3, 0.5, 1.0, 2.0))]), 2)
    for ms, xi in OPTICS_PARAMS_STREETVIEW:
        np.testing.assert_array_equal(optics_xi(x, ms, xi), OPTICS(min_samples=ms, xi=xi).fit(x).labels_)


def plain_optics_graph(x, min_samples):
    """The OPTICS graph as a plain loop (one full distance row and argmin per step): the reference."""
    from scipy.spatial import cKDTree

    n = len(x)
    core = cKDTree(x).query(x, k=min_samples)[0][:, -1]
    reach, pred = np.full(n, np.inf), np.full(n, -1, dtype=np.int64)
    done, order = np.zeros(n, dtype=bool), np.empty(n, dtype=np.int64)
    for i in range(n):
        p = int(np.argmin(np.where(done, np.inf, np.minimum(reach, np.finfo(np.float64).max))))
        done[p] = True
        order[i] = p
        dist = np.maximum(np.sqrt(((x - x[p]) ** 2).sum(axis=1)), core[p])
        better = (dist < reach) & ~done
        reach[better] = dist[better]
        pred[better] = p
    return reach, pred, order


def clustered_with_duplicates(n, seed):
    """Blobs on the sphere (km), with exact copies of some points and some points at one spot."""
    from pigeon.cells._spatial import unit_xyz_km

    rng = np.random.default_rng(seed)
    lat = np.concatenate([rng.normal(c, 0.05, n // 4) for c in rng.uniform(40, 50, 4)])
    lon = np.concatenate([rng.normal(c, 0.08, n // 4) for c in rng.uniform(0, 10, 4)])
    copies = rng.choice(len(lat), n // 5, replace=False)
    lat, lon = np.r_[lat, lat[copies], np.full(12, lat[0])], np.r_[lon, lon[copies], np.full(12, lon[0])]
    order = rng.permutation(len(lat))
    return unit_xyz_km(lat[order], lon[order])


@pytest.mark.parametrize("matrix_max", [512, 0], ids=["distance-matrix", "distance-rows"])
def test_fast_optics_graph_is_the_plain_loop_bit_for_bit(matrix_max, monkeypatch):
    """Both ways of getting the distances (a precomputed matrix, a row per step) give the plain loop's bits."""
    from pigeon.cells import _optics

    monkeypatch.setattr(_optics, "MATRIX_MAX_POINTS", matrix_max)
    for seed, (n, ms) in enumerate([(400, 3), (400, 15), (80, 2)]):
        x = clustered_with_duplicates(n, seed)
        for got, want in zip(_optics.optics_graph(x, ms), plain_optics_graph(x, ms)):
            np.testing.assert_array_equal(got, want)


def test_fast_optics_labels_match_sklearn_with_duplicates():
    from sklearn.cluster import OPTICS

    from pigeon.cells._optics import optics_xi

    x = clustered_with_duplicates(600, 7)  # above MATRIX_MAX_POINTS: the row-by-row distances
    for ms, xi in [(3, 0.15), (15, 0.015), (40, 0.05)]:
        labels = optics_xi(x, ms, xi)
        assert labels.max() >= 1  # clusters found, so the comparison says something
        with np.errstate(divide="ignore", invalid="ignore"):  # duplicates: zero reachability
            expected = OPTICS(min_samples=ms, xi=xi).fit(x).labels_
        np.testing.assert_array_equal(labels, expected)


def test_optics_round_carves_out_each_cluster():
    from pigeon.cells._split import split_oversized

    lat, lon = blobs()
    parent = shapely.box(9.0, 59.0, 12.0, 61.0)
    geoms, members, origin = split_oversized([parent], [np.arange(150)], lat, lon, min_size=30, max_size=60,
                                             optics_params=[(15, 0.015)])
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


def test_paper_rules_leave_cells_above_max_size_that_median_cuts_bound():
    """The paper leaves a cell above max_size when OPTICS finds no split; ``balance=True`` cuts it at medians."""
    from pigeon.cells._split import split_oversized

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)  # uniform: OPTICS finds little structure
    parent = shapely.box(0, 0, 1, 1)
    kwargs = dict(min_size=30, max_size=60, optics_params=OPTICS_PARAMS_STREETVIEW)
    _, members, _ = split_oversized([parent], [np.arange(500)], lat, lon, **kwargs)
    assert max(len(m) for m in members) > 60
    geoms, members, _ = split_oversized([parent], [np.arange(500)], lat, lon, balance=True, **kwargs)
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
    kwargs = dict(min_size=120, max_size=240, optics_params=[(45, 0.015)], sample_cap=200, seed=0)
    first = split_oversized([parent], [np.arange(600)], lat, lon, **kwargs)
    second = split_oversized([parent], [np.arange(600)], lat, lon, **kwargs)
    assert [m.tolist() for m in first[1]] == [m.tolist() for m in second[1]]
    assert sorted(tuple(np.unique(m // 200)) for m in first[1]) == [(0,), (1,), (2,)]


def test_a_cells_sample_depends_on_the_seed_and_its_points_not_on_the_other_cells():
    """The sample of a large cell is drawn from the seed and the cell's own points: splitting the cells in
    another order (or other cells first, or in other processes) gives the same cells."""
    from pigeon.cells._split import sample_generator, split_oversized

    parents, members, lat, lon = sampled_cells()
    kwargs = dict(min_size=120, max_size=240, optics_params=[(45, 0.015)], sample_cap=200, seed=0)
    both = split_oversized(parents, members, lat, lon, **kwargs)
    reverse = split_oversized(parents[::-1], members[::-1], lat, lon, **kwargs)
    alone = split_oversized(parents[1:], members[1:], lat, lon, **kwargs)
    assert len(both[0]) > 2  # a split on a sample was made
    assert as_cells(*both[:2]) == as_cells(*reverse[:2])
    assert set(as_cells(*alone[:2])) < set(as_cells(*both[:2]))
    a, b = members[0], members[1]
    draw = [sample_generator(s, lat[m], lon[m]).choice(600, 200, replace=False) for s, m in ((0, a), (0, a), (1, a),
                                                                                              (0, b))]
    assert (draw[0] == draw[1]).all() and (draw[0] != draw[2]).any() and (draw[0] != draw[3]).any()


def test_points_off_the_cell_shape_keep_their_group():
    """Coastal points at sea (outside the cell's land) follow their cluster, into the child on their coast."""
    rng = np.random.default_rng(0)
    lon = np.r_[rng.uniform(0.1, 0.9, 40), rng.uniform(0.1, 0.9, 40), rng.uniform(0.1, 0.9, 10)]
    lat = np.r_[rng.uniform(1.1, 1.3, 40), rng.uniform(-0.3, -0.1, 40), rng.uniform(0.1, 0.9, 10)]
    labels = np.r_[np.zeros(40, int), np.ones(40, int), -np.ones(10, int)]  # two clusters at sea, noise on land
    parent = shapely.box(0, 0, 1, 1)
    children = split_with_labels(parent, lat, lon, labels)
    assert_partition(children, parent, 90)
    assert len(children) == 2
    for geom, idx in children:
        at_sea = idx[idx < 80]
        assert len(at_sea) == 40 and len(np.unique(at_sea // 40)) == 1  # each cluster whole, in one child
        north = at_sea[0] < 40
        assert (geom.centroid.y > 0.5) == north  # the child of the northern cluster is the land on its coast


def test_a_split_that_leaves_a_child_without_land_is_not_made():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(0, 1, 400), np.concatenate([rng.uniform(0, 1, 100), rng.uniform(1.5, 3, 300)])
    # two clusters, the second far out at sea: its Voronoi regions reach none of the cell's land
    labels = (lon > 2.2).astype(int)
    assert split_with_labels(shapely.box(0, 0, 1, 1), lat, lon, labels, min_size=30, max_size=300) is None


def test_median_cuts_move_off_the_sea_onto_the_land():
    """With most points at sea, the median lies off the land: the line moves to the middle of the land."""
    from pigeon.cells._split import median_split

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(0, 1, 400), np.concatenate([rng.uniform(0, 1, 100), rng.uniform(1.5, 3, 300)])
    children = median_split(shapely.box(0, 0, 1, 1), lat, lon)
    assert_partition(children, shapely.box(0, 0, 1, 1), 400)
    (west, west_idx), (east, east_idx) = sorted(children, key=lambda c: c[0].bounds[0])
    assert shapely.equals(west, shapely.box(0, 0, 0.5, 1)) and shapely.equals(east, shapely.box(0.5, 0, 1, 1))
    assert (lon[west_idx] <= 0.5).all() and len(east_idx) > 300  # the sea points follow the line


def test_split_across_the_antimeridian():
    """A cell cut at ±180 splits in one plane: children tile it, each one region, centroids by the line."""
    from pigeon.geo import spherical_mean
    from pigeon.geography._topology import regions

    rng = np.random.default_rng(5)
    parent = shapely.union_all([shapely.box(179.0, -1.0, 180.0, 1.0), shapely.box(-180.0, -1.0, -179.0, 1.0)])
    # three clusters: west of the line, east of it, and one on the line
    lon = np.r_[rng.normal(179.4, 0.05, 50), rng.normal(-179.4, 0.05, 50), rng.normal(180.0, 0.05, 50)]
    lon = (lon + 180.0) % 360.0 - 180.0
    lat = np.r_[rng.normal(-0.5, 0.05, 50), rng.normal(-0.5, 0.05, 50), rng.normal(0.5, 0.05, 50)]
    children = split_with_labels(parent, lat, lon, np.repeat([0, 1, 2], 50))
    assert_partition(children, parent, 150)
    geoms = np.asarray([g for g, _ in children], dtype=object)
    assert sorted(tuple(np.unique(m // 50)) for _, m in children) == [(0,), (1,), (2,)]
    assert all(-180 <= g.bounds[0] and g.bounds[2] <= 180 for g in geoms)
    assert (regions(geoms).groupby("shape").size() == 1).all()  # one region each, across the line
    line = next(g for g, m in children if m[0] >= 100)
    assert line.geom_type == "MultiPolygon" and line.bounds[0] == -180.0 and line.bounds[2] == 180.0
    points = shapely.points(lon, lat)
    for g, m in children:
        assert shapely.covers(g, points[m]).all()
        c_lat, c_lon = spherical_mean(lat[m], lon[m])
        assert abs(c_lat - lat[m].mean()) < 0.05 and 179.0 < abs(c_lon) <= 180.0
