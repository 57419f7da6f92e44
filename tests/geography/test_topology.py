"""Shared borders, contiguous areas and the antimeridian (pigeon.geography._topology and its users)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from pigeon.geography._topology import (
    border_graph, circular_span, contiguous_groups, regions, unwrap_geometry, wrap_geometry,
)
from tests.support.maps import INTERLEAVED_LAND, fragmented_areas, interleaved_places


def box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def test_border_graph_measures_shared_borders_and_crosses_the_antimeridian():
    pieces = np.asarray([box(0, 0, 1, 1), box(1, 0, 2, 2), box(3, 0, 4, 1), box(179, 0, 180, 1),
                         box(-180, 0.5, -179, 2), box(1, 2, 1.5, 2.5), box(-1, 1, 0, 2)], dtype=object)
    i, j, length = border_graph(pieces)
    found = {(int(a), int(b)): round(float(c), 3) for a, b, c in zip(i, j, length)}
    # 0-1 share x=1 (1 long); 1-5 share y=2 (0.5); 3-4 the line ±180 from lat 0.5 to 1; 0-6 only a corner
    assert found == {(0, 1): 1.0, (1, 5): 0.5, (3, 4): 0.5}
    i, _, _ = border_graph(pieces, scope=["a", "b", "a", "a", "a", "b", "a"])
    assert sorted(i.tolist()) == [1, 3]  # only pieces of the same scope pair up


def test_contiguous_groups_rules():
    """Fragments go to the group they border most; islands stay; loose fragments chain outward."""
    pieces = np.asarray([
        box(0, 0, 2, 2),      # 0: A main
        box(2, 0, 4, 2),      # 1: B main
        box(4, 0, 4.5, 0.5),  # 2: A fragment bordering only B (0.5) ...
        box(4, 0.5, 4.5, 2),  # 3: ... and C's fragment next to it, bordering B (1.5) and piece 2
        box(0, 2, 1.5, 2.2),  # 4: C fragment bordering only A
        box(6, 6, 7, 7),      # 5: A island
        box(2, 2, 4, 4),      # 6: C main (borders B and, at a corner, A)
    ], dtype=object)
    groups = np.array([0, 1, 0, 2, 2, 0, 2])
    weight = np.array([10, 10, 1, 1, 1, 0, 10])
    i, j, length = border_graph(pieces)
    new = contiguous_groups(groups, i, j, length, weight, shapely.area(pieces))
    assert new.tolist() == [0, 1, 1, 1, 0, 0, 2]
    # the result has no fragment touching another group
    shapes = [shapely.union_all(pieces[new == g]) for g in range(3)]
    table = regions(np.asarray(shapes, dtype=object))
    assert not table.loc[table["region"] > 0, "touches_other"].any()


def test_contiguous_groups_settles_loose_fragments_that_only_touch_each_other():
    pieces = np.asarray([box(0, 0, 1, 1), box(5, 5, 6, 6), box(10, 10, 11, 11), box(11, 10, 12, 11)], dtype=object)
    groups = np.array([0, 1, 0, 1])  # an island split between two groups, neither of which has its main part there
    i, j, length = border_graph(pieces)
    new = contiguous_groups(groups, i, j, length, np.array([5, 5, 1, 2]))
    assert new.tolist() == [0, 1, 1, 1]  # the heavier half keeps it and the other joins


def test_circular_span_wrap_and_unwrap():
    assert circular_span([10.0, 20.0, -30.0]) == (-30.0, 20.0)
    assert circular_span([179.5, -179.5, 179.9]) == (179.5, 180.5)
    straddling = shapely.union_all([box(179, 0, 180, 1), box(-180, 0, -179, 1)])
    one = unwrap_geometry(straddling, 180.0)
    assert one.geom_type == "Polygon" and one.bounds == (179.0, 0.0, 181.0, 1.0)
    back = wrap_geometry(one)
    assert back.geom_type == "MultiPolygon" and shapely.equals(back, straddling)
    assert shapely.equals(wrap_geometry(box(-185, 0, -175, 1)),
                          shapely.union_all([box(175, 0, 180, 1), box(-180, 0, -175, 1)]))


def test_derived_areas_become_one_piece_plus_islands():
    """Interleaved places give fragmented Voronoi areas; the cleanup gives each fragment to its best neighbour."""
    from pigeon.geography._admin import _contiguous

    raw = fragmented_areas()
    before = regions(raw.geometry.to_numpy())
    assert (before["touches_other"] & (before["region"] > 0)).sum() >= 5  # the fixture is fragmented
    places = interleaved_places()
    geoms = _contiguous(raw, places)
    after = regions(geoms)
    points = shapely.points(places["lon"], places["lat"])
    after["places"] = [int(shapely.contains(g, points).sum()) for g in after.geometry]
    main = after.sort_values(["shape", "places", "area"], ascending=[True, False, False]).drop_duplicates("shape")
    loose = after.drop(index=main.index)
    assert len(loose) >= 1 and not loose["touches_other"].any()  # every other region is an island
    assert np.isclose(shapely.area(geoms).sum(), INTERLEAVED_LAND.area)  # area kept, no overlap
    assert shapely.equals(shapely.union_all(geoms), INTERLEAVED_LAND)
    island = shapely.box(1.0, 5.0, 1.5, 5.5)
    assert sum(shapely.covers(g, island) for g in geoms) == 1
    # most places still lie in the area of their name
    hits, areas = shapely.STRtree(geoms).query(points, predicate="within")
    assert (raw["admin2"].to_numpy()[areas] == places["admin2"].to_numpy()[hits]).mean() > 0.8


def test_derived_area_voronoi_reaches_across_the_antimeridian():
    import pandas as pd

    from pigeon.geography._admin import _voronoi_areas

    land = shapely.union_all([box(178, -1, 180, 1), box(-180, -1, -178, 1)])
    places = pd.DataFrame({"lat": [0.0, 0.0], "lon": [178.2, -179.9], "admin1": ["West", "East"],
                           "admin2": [None, None], "cc": ["XX", "XX"]})
    areas = _voronoi_areas("XX", land, places, level=1).set_index("admin1")
    # land at 179.95 E is 0.15 deg from the place at 179.9 W across the line, 1.75 deg from the one at 178.2 E
    assert areas.geometry["East"].contains(shapely.Point(179.95, 0.0))
    assert areas.geometry["West"].contains(shapely.Point(179.0, 0.0))
    assert np.isclose(shapely.area(areas.geometry.to_numpy()).sum(), land.area)


@pytest.mark.parametrize("lat, lon, code", [(52.0, -179.995, "US"), (-18.66, -179.995, "FJ")])
def test_coastal_search_crosses_the_antimeridian(lat, lon, code):
    """At sea just east of ±180, the only land within 25 km is across the line (an Aleutian island, Fiji)."""
    from pigeon.geography import country_of

    assert country_of(lat, lon, max_coast_km=25.0).tolist() == [code]
    assert country_of(lat, lon, max_coast_km=5.0).tolist() == [None]


def test_nearest_polygon_uses_great_circle_distance_across_the_antimeridian():
    from pigeon.cells._spatial import locate_points

    geoms = np.asarray([box(170, 0, 179, 1), box(-179.9, 0, -170, 1), box(0, 70, 10, 71), box(11.5, 71.3, 20, 72)],
                       dtype=object)
    # a point at 179.95 E: 0.95 deg from polygon 0, 0.15 deg from polygon 1 across the line
    # a point at (71.9 N, 10 E): 0.9 deg (100 km) north of polygon 2, 1.5 deg of longitude (52 km) west of 3
    lat, lon = np.array([0.5, 71.9]), np.array([179.95, 10.0])
    assert locate_points(lat, lon, geoms).tolist() == [1, 3]
    assert locate_points(lat, lon, geoms, nearest=False).tolist() == [-1, -1]
