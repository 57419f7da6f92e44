"""The Blue Marble generator: geometry of the patches, sampling on land, determinism, manifest and CLI."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from pigeon.data import SPLITS, image_views, read_manifest
from pigeon.data.bluemarble import (
    MANIFEST_NAME, blue_marble, extract_patch, make_bluemarble_dataset, on_land, sample_locations,
)
from pigeon.errors import InputError
from pigeon.geo import EARTH_RADIUS_KM, destination_point
from tests.support import assert_clean_error

SOURCE_KM_PER_ROW = math.pi * EARTH_RADIUS_KM / 2048  # north-south extent of one source pixel


def _source_pixel_centre(row, col):
    """(lat, lon) of the centre of source pixel (row, col)."""
    h, w = blue_marble().shape[:2]
    return 90.0 - (row + 0.5) / h * 180.0, (col + 0.5) / w * 360.0 - 180.0


def _land_pixels(count, seed, max_abs_lat=70.0):
    """Random (row, col) of source pixels on land."""
    rng = np.random.default_rng(seed)
    h, w = blue_marble().shape[:2]
    rows, cols = rng.integers(0, h, 20 * count), rng.integers(0, w, 20 * count)
    lat, lon = _source_pixel_centre(rows, cols)
    keep = on_land(lat, lon) & (np.abs(lat) < max_abs_lat)
    return rows[keep][:count], cols[keep][:count]


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """20 locations x 4 views of 48 px, without jitter so the geometry can be checked."""
    out = tmp_path_factory.mktemp("bm") / "ds"
    df = make_bluemarble_dataset(out, n=20, views=4, seed=0, size_px=48, patch_km=400.0, jitter_km=0.0)
    return out, df


def test_patch_centre_and_north_match_source_pixels():
    source = blue_marble().astype(np.int64)
    rows, cols = _land_pixels(60, seed=0)
    size = 33  # odd: the middle pixel sits exactly on the centre; one patch pixel = one source row
    for row, col in zip(rows, cols):
        lat, lon = _source_pixel_centre(row, col)
        patch = extract_patch(lat, lon, 0.0, size_px=size, patch_km=size * SOURCE_KM_PER_ROW).astype(np.int64)
        mid = size // 2
        assert np.abs(patch[mid, mid] - source[row, col]).max() <= 1
        assert np.abs(patch[mid - 1, mid] - source[row - 1, col]).max() <= 1  # north is up
        assert np.abs(patch[mid + 1, mid] - source[row + 1, col]).max() <= 1


def test_patch_east_is_right_near_equator():
    source = blue_marble().astype(np.float64)
    rows, cols = _land_pixels(40, seed=1, max_abs_lat=5.0)
    right, left = [], []
    for row, col in zip(rows, cols):
        lat, lon = _source_pixel_centre(row, col)
        patch = extract_patch(lat, lon, 0.0, size_px=33, patch_km=33 * SOURCE_KM_PER_ROW).astype(np.float64)
        right.append(np.abs(patch[16, 17] - source[row, col + 1]).mean())
        left.append(np.abs(patch[16, 17] - source[row, col - 1]).mean())
    assert np.mean(right) < 2.0 < np.mean(left)


def test_patch_covers_fixed_ground_extent_at_any_latitude():
    # a synthetic source whose value is the column index: the patch's left-right value span = longitude span
    width = 256
    ramp = np.tile(np.arange(width, dtype=np.uint8), (128, 1))
    deg_per_value = 360.0 / width
    spans = {}
    for lat in (0.0, 60.0):
        patch = extract_patch(lat, 0.0, 0.0, size_px=65, patch_km=2000.0, image=ramp).astype(np.float64)
        spans[lat] = (patch[32, -1] - patch[32, 0]) * deg_per_value
    km_per_deg = math.pi * EARTH_RADIUS_KM / 180
    assert spans[0.0] == pytest.approx(2000 * 64 / 65 / km_per_deg, rel=0.1)
    assert spans[60.0] / spans[0.0] == pytest.approx(1 / math.cos(math.radians(60)), rel=0.1)


def test_heading_rotates_the_patch():
    north_up = extract_patch(35.0, 139.0, 0.0, size_px=40, patch_km=500.0).astype(np.int64)
    for k, heading in ((1, 90.0), (2, 180.0), (3, 270.0)):
        rotated = extract_patch(35.0, 139.0, heading, size_px=40, patch_km=500.0).astype(np.int64)
        # heading 90: east (the right edge of the north-up patch) is at the top
        assert np.abs(rotated - np.rot90(north_up, k)).max() <= 1
        assert np.abs(rotated - north_up).mean() > 5


def test_sampled_locations_are_on_land_and_mixed():
    from pigeon.geography import is_land  # an independent land mask (Köppen-Geiger, ~3 km)

    df = sample_locations(300, 0, populated_fraction=0.5, lat_range=(-50.0, 70.0))
    lat, lon = df["lat"].to_numpy(), df["lon"].to_numpy()
    assert on_land(lat, lon).all()
    assert is_land(lat, lon).mean() > 0.97
    assert ((lat >= -50) & (lat <= 70)).all()
    assert (df["sampling"] == "populated").sum() == 150

    night = np.asarray(Image.open(resources.files("pigeon") / "resources" / "bluemarble" / "earth-night.jpg"))[..., 0]
    h, w = night.shape
    light = night[np.floor((90 - lat) / 180 * h).astype(int), np.floor((lon + 180) / 360 * w).astype(int) % w]
    populated = (df["sampling"] == "populated").to_numpy()
    assert light[populated].mean() > 3 * light[~populated].mean()


def test_uniform_sampling_is_uniform_over_land_area():
    water = np.asarray(Image.open(resources.files("pigeon") / "resources" / "bluemarble" / "earth-water.png"))[..., 0]
    h = water.shape[0]
    lat = 90 - (np.arange(h) + 0.5) / h * 180
    area = (water < 128).sum(axis=1) * np.cos(np.radians(lat)) * ((lat > -60) & (lat < 80))  # land area per row
    expected_north = area[lat > 50].sum() / area.sum()
    df = sample_locations(1500, 2, populated_fraction=0.0, lat_range=(-60.0, 80.0))
    assert (df["sampling"] == "land").all()
    assert (df["lat"] > 50).mean() == pytest.approx(expected_north, abs=0.04)


def test_manifest_columns_views_and_splits(dataset):
    out, df = dataset
    back = read_manifest(out / MANIFEST_NAME)
    assert list(back.columns) == ["id", "image", "lat", "lon", "heading", "view_lat", "view_lon", "split", "sampling"]
    assert back["id"].is_unique and len(back) == 20
    assert all(isinstance(v, list) and len(v) == 4 for v in back["image"])
    for views in image_views(back):
        for path in views:
            assert path.is_file()
            assert Image.open(path).size == (48, 48)
    assert back["split"].value_counts().to_dict() == {"train": 16, "val": 2, "test": 2}
    assert set(back["split"]) == set(SPLITS)
    heading = back["heading"].to_numpy()
    assert ((heading >= 0) & (heading < 360)).all() and np.unique(heading).size == 20
    assert [str(p) for p in image_views(df)[0]] == [str(p) for p in image_views(back)[0]]
    assert on_land(back["lat"], back["lon"]).all()
    assert back.attrs["meta"]["split"]["by"] == "random"


def test_view_centres_are_recorded(dataset):
    from pigeon.geo import haversine_km, initial_bearing

    _, df = dataset  # no jitter: each view centre is patch_km / 2 ahead of the location in the view's heading
    for row in df.itertuples():
        vlat, vlon = np.asarray(row.view_lat), np.asarray(row.view_lon)
        np.testing.assert_allclose(haversine_km(row.lat, row.lon, vlat, vlon), 200.0, atol=1e-6)
        bearings = initial_bearing(row.lat, row.lon, vlat, vlon)
        np.testing.assert_allclose((bearings - row.heading - np.arange(4) * 90 + 180) % 360 - 180, 0, atol=1e-6)


def test_region_split_option(tmp_path):
    from pigeon.data.split import SplitConfig

    df = make_bluemarble_dataset(tmp_path, n=60, views=2, size_px=16,
                                 split=SplitConfig(by="region", buffer_km=2000, n_regions=4, seed=1))
    meta = read_manifest(tmp_path / MANIFEST_NAME).attrs["meta"]["split"]
    assert meta["by"] == "region" and meta["min_heldout_to_train_km"] >= 2000
    assert meta["counts"]["excluded"] == df["split"].isna().sum()
    assert sum(meta["counts"].values()) == 60


def test_views_look_in_the_recorded_headings(dataset):
    out, df = dataset
    errors, wrong = [], []
    for row, views in zip(df.itertuples(), image_views(df)):
        for k, path in enumerate(views):
            heading = (row.heading + 90.0 * k) % 360.0
            centre = destination_point(row.lat, row.lon, heading, 200.0)  # default offset: half the patch
            expected = extract_patch(*centre, heading, size_px=48, patch_km=400.0).astype(np.float64)
            turned = extract_patch(*centre, heading + 90.0, size_px=48, patch_km=400.0).astype(np.float64)
            errors.append(np.abs(_pixels(path) - expected).mean())
            wrong.append(np.abs(_pixels(path) - turned).mean())
    assert max(errors) < 6.0  # JPEG noise
    assert np.mean(wrong) > 3 * np.mean(errors)


def test_single_view_files_are_centred_on_coordinates(tmp_path):
    from scipy.ndimage import map_coordinates

    source = blue_marble().astype(np.float64)
    h, w = source.shape[:2]

    def source_at(lat, lon):  # an independent bilinear read of the source at (lat, lon)
        yx = [[(90 - lat) / 180 * h - 0.5], [(lon + 180) / 360 * w - 0.5]]
        return np.array([map_coordinates(source[..., ch], yx, order=1, mode="grid-wrap")[0] for ch in range(3)])

    # 32 px over 40 km: ~4 source pixels magnified, so the JPEG centre is smooth and sub-pixel errors show
    df = make_bluemarble_dataset(tmp_path, n=20, views=1, seed=4, size_px=32, patch_km=40.0, jitter_km=0.0,
                                 rotate=False)
    assert (df["heading"] == 0).all() and all(isinstance(v, str) for v in df["image"])
    at_point, one_pixel_off = [], []
    for row, (path,) in zip(df.itertuples(), image_views(df)):
        centre = _pixels(path)[15:17, 15:17].mean(axis=(0, 1))
        at_point.append(np.abs(centre - source_at(row.lat, row.lon)).mean())
        one_pixel_off.append(np.abs(centre - source_at(row.lat + 180 / h, row.lon)).mean())
    assert max(at_point) < 2.5
    assert np.mean(one_pixel_off) > 4 * np.mean(at_point)


def test_deterministic_for_a_seed(tmp_path):
    kwargs = dict(n=8, views=2, size_px=32)
    a = make_bluemarble_dataset(tmp_path / "a", seed=5, **kwargs)
    make_bluemarble_dataset(tmp_path / "b", seed=5, **kwargs)
    c = make_bluemarble_dataset(tmp_path / "c", seed=6, **kwargs)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 8 * 2 + 2
    for rel in files:
        if rel.name != "meta.json":  # meta.json records the creation time
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert not np.allclose(a["lat"], c["lat"])


def test_bad_parameters_raise_input_error(tmp_path):
    for kwargs in (dict(n=0), dict(n=2.5), dict(views=3), dict(size_px=4), dict(patch_km=-1.0),
                   dict(jitter_km=float("nan")), dict(populated_fraction=1.5), dict(lat_range=(10.0, 5.0)),
                   dict(split=(0.5, 0.5))):
        with pytest.raises(InputError):
            make_bluemarble_dataset(tmp_path, **kwargs)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_cli_writes_dataset_and_overwrites(cli, tmp_path):
    out = tmp_path / "bm"
    result = cli("data", "bluemarble", "-o", out, "--n", "6", "--views", "2", "--size", "32", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert "6 locations" in result.stdout
    assert len(read_manifest(out / MANIFEST_NAME)) == 6 and (out / "meta.json").is_file()
    assert len(list((out / "images").glob("*.jpg"))) == 12

    assert_clean_error(cli("data", "bluemarble", "-o", out, "--n", "3"), "already holds", "--overwrite")
    result = cli("data", "bluemarble", "-o", out, "--n", "3", "--views", "1", "--size", "32", "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert len(read_manifest(out / MANIFEST_NAME)) == 3
    assert len(list((out / "images").glob("*.jpg"))) == 3  # the old views are gone


@pytest.mark.parametrize("args, needle", [
    (("--n", "0"), "n=0"),
    (("--n", "-5"), "n=-5"),
    (("--views", "3"), "views=3"),
    (("--split", "0.9,0.2,0.1"), "--fractions"),
    (("--by", "region", "--buffer-km", "30000"), "leaves no training row"),
    (("--populated", "2"), "populated_fraction"),
])
def test_cli_bad_arguments_give_clean_errors(cli, tmp_path, args, needle):
    assert_clean_error(cli("data", "bluemarble", "-o", tmp_path / "x", *args), needle)
    assert not (tmp_path / "x").exists()
