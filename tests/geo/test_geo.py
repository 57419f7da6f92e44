"""Known answers for the geodesy core."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pigeon.errors import InputError
from pigeon.geo import (
    EARTH_RADIUS_KM,
    check_coords,
    destination_point,
    geoguessr_score,
    haversine_km,
    haversine_km_torch,
    initial_bearing,
    latlon_to_xyz,
    pairwise_haversine_km,
    spherical_mean,
    wrap_lon,
    xyz_to_latlon,
)

HALF_CIRCUMFERENCE = math.pi * EARTH_RADIUS_KM


def test_radius_is_the_reference_codes_wgs84_equatorial_radius():
    assert EARTH_RADIUS_KM == 6378.137


@pytest.mark.parametrize(
    ("p1", "p2", "expected"),
    [
        ((0, 0), (0, 0), 0.0),
        ((0, 0), (0, 180), HALF_CIRCUMFERENCE),  # antipodes on the equator
        ((40, -74), (-40, 106), HALF_CIRCUMFERENCE),  # antipodes off the equator
        ((90, 0), (-90, 0), HALF_CIRCUMFERENCE),  # pole to pole
        ((90, 0), (90, 123), 0.0),  # the pole is one point whatever the longitude
        ((0, 0), (90, 0), HALF_CIRCUMFERENCE / 2),
        ((0, 0), (0, 90), HALF_CIRCUMFERENCE / 2),
        ((0, 179.5), (0, -179.5), HALF_CIRCUMFERENCE / 180),  # 1 degree across the dateline
        ((10, 180), (10, -180), 0.0),
    ],
)
def test_haversine_known_answers(p1, p2, expected):
    # 1 m: haversine is ill-conditioned next to antipodes (asin near 1), fine everywhere else
    assert haversine_km(*p1, *p2) == pytest.approx(expected, abs=1e-3)
    assert haversine_km(*p2, *p1) == pytest.approx(expected, abs=1e-3)


def test_haversine_broadcasts():
    d = haversine_km(np.zeros((3, 1)), 0.0, 0.0, np.array([0.0, 90.0]))
    assert d.shape == (3, 2)
    np.testing.assert_allclose(d[:, 1], HALF_CIRCUMFERENCE / 2)


def test_pairwise_matches_elementwise():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(-90, 90, 5), rng.uniform(-180, 180, 5)]
    b = np.c_[rng.uniform(-90, 90, 4), rng.uniform(-180, 180, 4)]
    d = pairwise_haversine_km(a, b)
    assert d.shape == (5, 4)
    assert d[3, 2] == pytest.approx(haversine_km(a[3, 0], a[3, 1], b[2, 0], b[2, 1]))


@pytest.mark.parametrize(("dtype", "atol_km"), [(torch.float64, 1e-3), (torch.float32, 5.0)])
def test_torch_haversine_matches_numpy_and_has_finite_gradients(dtype, atol_km):
    # antipodes, a long pair, identical points, a quarter circle, off-equator antipodes
    coords = np.array([[0, 0, 0, 180], [48.85, 2.35, -33.87, 151.21], [10, 20, 10, 20], [0, 0, 0, 90],
                       [40, -74, -40, 106]], dtype=np.float64)
    lat1, lon1 = (torch.tensor(coords[:, i], dtype=dtype, requires_grad=True) for i in (0, 1))
    lat2, lon2 = (torch.tensor(coords[:, i], dtype=dtype) for i in (2, 3))
    d = haversine_km_torch(lat1, lon1, lat2, lon2)
    assert d.dtype == dtype
    np.testing.assert_allclose(d.detach().double().numpy(), haversine_km(*coords.T), atol=atol_km, rtol=1e-6)
    d.sum().backward()
    assert torch.isfinite(lat1.grad).all() and torch.isfinite(lon1.grad).all()


@pytest.mark.parametrize(
    ("d", "points"),
    [(0.0, 5000), (1492.7, round(5000 / math.e)), (1492.7 * math.log(2), 2500), (10_000.0, 6), (1e6, 0)],
)
def test_geoguessr_score(d, points):
    assert geoguessr_score(d) == points


def test_geoguessr_score_is_vectorised_integers():
    s = geoguessr_score(np.array([0.0, 1492.7]))
    assert s.dtype == np.int64
    assert s.tolist() == [5000, 1839]


def test_xyz_round_trip_and_unit_length():
    lat, lon = np.array([0.0, 45.0, -89.0, 12.5]), np.array([0.0, -120.0, 179.0, 33.3])
    xyz = latlon_to_xyz(lat, lon)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=-1), 1.0)
    np.testing.assert_allclose(latlon_to_xyz(90, 0), [0, 0, 1], atol=1e-12)
    back = xyz_to_latlon(xyz * 7.0)  # length does not matter
    np.testing.assert_allclose(back[0], lat, atol=1e-9)
    np.testing.assert_allclose(back[1], lon, atol=1e-9)


def test_spherical_mean_across_the_dateline():
    lat, lon = spherical_mean([0.0, 0.0], [179.0, -179.0])
    assert lat == pytest.approx(0.0, abs=1e-9)
    assert abs(lon) == pytest.approx(180.0)  # a naive mean would say 0


def test_spherical_mean_weights_and_errors():
    assert spherical_mean([10.0, -10.0], [0.0, 0.0]) == pytest.approx((0.0, 0.0), abs=1e-9)
    lat, _ = spherical_mean([0.0, 60.0], [0.0, 0.0], weights=[0.0, 1.0])
    assert lat == pytest.approx(60.0)
    assert np.isfinite(spherical_mean([0.0, 0.0], [0.0, 180.0])).all()  # degenerate but finite
    with pytest.raises(InputError, match="empty"):
        spherical_mean([], [])


def test_wrap_lon():
    np.testing.assert_allclose(wrap_lon([190.0, 180.0, -180.0, -190.0, 540.0, 10.0]),
                               [-170.0, -180.0, -180.0, 170.0, -180.0, 10.0])


def test_destination_point_and_bearing():
    lat, lon = destination_point(0.0, 0.0, 90.0, HALF_CIRCUMFERENCE / 2)
    assert (float(lat), float(lon)) == pytest.approx((0.0, 90.0), abs=1e-9)
    lat, lon = destination_point(0.0, 170.0, 90.0, HALF_CIRCUMFERENCE / 9)  # 20 deg east, across the dateline
    assert (float(lat), float(lon)) == pytest.approx((0.0, -170.0), abs=1e-9)
    assert initial_bearing(0, 0, 10, 0) == pytest.approx(0.0)
    assert initial_bearing(0, 0, 0, 10) == pytest.approx(90.0)
    assert initial_bearing(0, 0, -10, 0) == pytest.approx(180.0)
    assert initial_bearing(0, 10, 0, 0) == pytest.approx(270.0)


def test_check_coords_accepts_and_names_the_bad_row():
    lat, lon = check_coords([1, 2], [3, 4])
    assert lat.dtype == np.float64 and lat.tolist() == [1.0, 2.0]
    check_coords([90, -90], [180, -180])  # bounds are inclusive
    with pytest.raises(InputError, match=r"lat .*row 1 has 91\.0"):
        check_coords([0, 91, 95], [0, 0, 0])
    with pytest.raises(InputError, match="2 bad rows"):
        check_coords([0, 91, 95], [0, 0, 0])
    with pytest.raises(InputError, match="lon .*row 0 has nan"):
        check_coords([0], [np.nan])
    with pytest.raises(InputError, match="2 latitudes but 1 longitudes"):
        check_coords([0, 1], [0])
