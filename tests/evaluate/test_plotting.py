"""World basemap, extents and great-circle arcs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from pigeon.plotting import LAND_COLOR, OCEAN_COLOR, WORLD_BBOX, bbox_around, great_circle_lines, world_map


def _pixel(fig, ax, lat, lon) -> np.ndarray:
    fig.canvas.draw()
    x, y = ax.transData.transform((lon, lat))
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[int(rgba.shape[0] - y), int(x), :3] / 255.0


def test_world_map_draws_land_on_land_and_sea_at_sea():
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    world_map(ax)
    assert (ax.get_xlim(), ax.get_ylim()) == ((-180, 180), (-90, 90))
    for lat, lon in [(0.0, 20.0), (-25.0, 135.0), (60.0, 100.0), (-10.0, -60.0)]:  # Congo, Australia, Siberia, Amazon
        np.testing.assert_allclose(_pixel(fig, ax, lat, lon), to_rgb(LAND_COLOR), atol=0.02)
    for lat, lon in [(0.0, -140.0), (-30.0, 80.0), (30.0, -40.0)]:  # Pacific, Indian, Atlantic
        np.testing.assert_allclose(_pixel(fig, ax, lat, lon), to_rgb(OCEAN_COLOR), atol=0.02)
    plt.close(fig)


def test_zoomed_map_sets_extent_and_aspect():
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    world_map(ax, bbox=(35.0, 45.0, 55.0, 75.0))  # the Caspian Sea and Kazakhstan
    assert (ax.get_xlim(), ax.get_ylim()) == ((45.0, 75.0), (35.0, 55.0))
    assert ax.get_aspect() == pytest.approx(1 / np.cos(np.radians(45.0)))  # true shapes at 45 N
    np.testing.assert_allclose(_pixel(fig, ax, 42.0, 51.0), to_rgb(OCEAN_COLOR), atol=0.02)  # Caspian
    np.testing.assert_allclose(_pixel(fig, ax, 48.0, 68.0), to_rgb(LAND_COLOR), atol=0.02)
    plt.close(fig)


def test_bbox_around():
    assert bbox_around([48.0, 50.0], [2.0, 4.0]) == pytest.approx((47.0, 1.0, 51.0, 5.0))  # min 4 deg span
    lat_min, lon_min, lat_max, lon_max = bbox_around([0.0, 40.0], [0.0, 40.0])
    assert (lat_min, lon_min, lat_max, lon_max) == pytest.approx((-6.0, -6.0, 46.0, 46.0))
    assert bbox_around([0.0, 0.0], [-170.0, 170.0]) == WORLD_BBOX
    assert bbox_around([89.0], [179.0])[2:] == (90.0, 180.0)  # clipped to the world


def test_great_circle_lines_follow_the_arc_and_break_at_the_dateline():
    fig, ax = plt.subplots()
    world_map(ax)
    lines = great_circle_lines(ax, [0.0, 0.0], [0.0, 170.0], [0.0, 0.0], [90.0, -170.0], n=5)
    quarter, *crossing = (np.asarray(seg) for seg in lines.get_segments())
    np.testing.assert_allclose(quarter, [[0, 0], [22.5, 0], [45, 0], [67.5, 0], [90, 0]], atol=1e-9)
    assert len(crossing) == 2  # split at the dateline: no streak across the whole map
    east, west = crossing
    assert (east[:, 0] >= 170 - 1e-9).all() and (west[:, 0] <= -170 + 1e-9).all()
    assert len(east) + len(west) == 5
    plt.close(fig)
