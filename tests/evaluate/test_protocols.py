"""Each evaluation protocol against an independent computation of its peer's formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pigeon.errors import UnknownNameError
from pigeon.evaluate import PROTOCOLS, compute_metrics, get_protocol, write_report
from tests.support import assert_clean_error

# WGS84
A_KM, F = 6378.137, 1 / 298.257223563


def haversine(lat1, lon1, lat2, lon2, radius):
    """The textbook haversine, one pair at a time (math module)."""
    p1, p2, dp, dl = map(math.radians, (lat1, lat2, lat2 - lat1, lon2 - lon1))
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))


def vincenty(lat1, lon1, lat2, lon2):
    """Vincenty's inverse formula on WGS84 (km): an independent ellipsoidal distance (not for near-antipodes)."""
    b = A_KM * (1 - F)
    u1, u2 = math.atan((1 - F) * math.tan(math.radians(lat1))), math.atan((1 - F) * math.tan(math.radians(lat2)))
    lam = big_l = math.radians(lon2 - lon1)
    for _ in range(200):
        sin_s = math.hypot(math.cos(u2) * math.sin(lam),
                           math.cos(u1) * math.sin(u2) - math.sin(u1) * math.cos(u2) * math.cos(lam))
        if sin_s == 0:
            return 0.0
        cos_s = math.sin(u1) * math.sin(u2) + math.cos(u1) * math.cos(u2) * math.cos(lam)
        sigma = math.atan2(sin_s, cos_s)
        sin_a = math.cos(u1) * math.cos(u2) * math.sin(lam) / sin_s
        cos2_a = 1 - sin_a ** 2
        cos_2sm = cos_s - 2 * math.sin(u1) * math.sin(u2) / cos2_a if cos2_a else 0.0
        c = F / 16 * cos2_a * (4 + F * (4 - 3 * cos2_a))
        prev, lam = lam, big_l + (1 - c) * F * sin_a * (
            sigma + c * sin_s * (cos_2sm + c * cos_s * (-1 + 2 * cos_2sm ** 2)))
        if abs(lam - prev) < 1e-13:
            break
    u_sq = cos2_a * (A_KM ** 2 - b ** 2) / b ** 2
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    d_sigma = big_b * sin_s * (cos_2sm + big_b / 4 * (cos_s * (-1 + 2 * cos_2sm ** 2) - big_b / 6 * cos_2sm * (
        -3 + 4 * sin_s ** 2) * (-3 + 4 * cos_2sm ** 2)))
    return b * big_a * (sigma - d_sigma)


INDEPENDENT = {
    "pigeon": lambda *p: haversine(*p, 6378.137),
    "osv5m": lambda *p: haversine(*p, 6371.0),
    "plonk": lambda *p: haversine(*p, 6371.0),
    "geoclip": vincenty,
    "georanker": vincenty,
}
INCLUSIVE = {"pigeon": False, "osv5m": False, "plonk": False, "geoclip": True, "georanker": False}


def frame(pairs):
    """truth and prediction tables for pairs ``((true lat, lon), (guess lat, lon))``."""
    ids = [f"i{k}" for k in range(len(pairs))]
    truth = pd.DataFrame({"id": ids, "lat": [t[0] for t, _ in pairs], "lon": [t[1] for t, _ in pairs]})
    pred = pd.DataFrame({"id": ids, "lat": [g[0] for _, g in pairs], "lon": [g[1] for _, g in pairs]})
    return pred, truth


def test_the_registry_holds_the_five_peers():
    assert set(PROTOCOLS) == set(INDEPENDENT)
    assert get_protocol().name == "pigeon" and get_protocol(PROTOCOLS["osv5m"]) is PROTOCOLS["osv5m"]
    with pytest.raises(UnknownNameError, match="geoclip"):
        get_protocol("im2gps")


@pytest.mark.parametrize("name", sorted(INDEPENDENT))
def test_distances_match_the_independent_formula_in_lat_lon_order(name):
    rules = get_protocol(name)
    pairs = [((48.8566, 2.3522), (52.52, 13.405)), ((60.0, 0.0), (60.0, 10.0)), ((-33.9, 151.2), (35.7, 139.7)),
             ((0.0, 179.9), (0.0, -179.9))]
    got = rules.distance(*(np.array([p[i][j] for p in pairs]) for i, j in ((1, 0), (1, 1), (0, 0), (0, 1))))
    want = [INDEPENDENT[name](*t, *g) for t, g in pairs]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # (lat, lon), not (lon, lat): 10 degrees of longitude at 60 N is half of 10 degrees along a meridian
    swapped = INDEPENDENT[name](0.0, 60.0, 10.0, 60.0)
    assert got[1] == pytest.approx(want[1]) and abs(got[1] - swapped) > 500
    assert got[3] < 25  # across the antimeridian: 0.2 degrees, not 359.8


@pytest.mark.parametrize("name", sorted(INDEPENDENT))
def test_antipodal_points(name):
    rules = get_protocol(name)
    d = float(rules.distance(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([180.0]))[0])
    expected = {"pigeon": math.pi * 6378.137, "osv5m": math.pi * 6371.0, "plonk": math.pi * 6371.0,
                # half the meridian ellipse: the shortest way between equatorial antipodes passes over a pole
                "geoclip": 20003.931458623, "georanker": 20003.931458623}[name]
    assert d == pytest.approx(expected, abs=1e-6)
    metrics = compute_metrics(*frame([((0.0, 0.0), (0.0, 180.0))]), protocol=name)
    assert metrics["acc_2500km"] == 0.0 and metrics["median_km"] == pytest.approx(expected, abs=1e-6)


def pair_at_exactly(rules, km: float) -> float:
    """A longitude east of (0, 0) along the equator whose distance under ``rules`` is exactly ``km``: bisection over
    floats, then the floats around it (a distance need only be monotone to within a few ulps)."""
    def dist(lon):
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        zero = np.zeros_like(lon)
        return rules.distance(zero, zero, zero, lon)

    lo, hi = np.array([0.0]).view(np.int64)[0], np.array([1.0]).view(np.int64)[0]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if dist(np.array([mid]).view(np.float64))[0] < km else (lo, mid)
    around = (lo + np.arange(-20_000, 20_000)).view(np.float64)
    exact = around[dist(around) == km]
    if not len(exact):
        pytest.fail(f"no float longitude gives exactly {km} km under {rules.name}")
    return float(exact[0])


@pytest.mark.parametrize("name", sorted(INDEPENDENT))
def test_a_pair_exactly_at_a_threshold(name):
    rules = get_protocol(name)
    lon = pair_at_exactly(rules, 25.0)
    assert INDEPENDENT[name](0.0, 0.0, 0.0, lon) == pytest.approx(25.0, rel=1e-9)
    metrics = compute_metrics(*frame([((0.0, 0.0), (0.0, lon))]), protocol=name)
    assert metrics["acc_25km"] == (1.0 if INCLUSIVE[name] else 0.0)
    assert metrics["acc_200km"] == 1.0 and metrics["acc_1km"] == 0.0
    assert metrics["protocol"] == name


def test_geoscore_rounded_per_image_or_unrounded():
    pairs = [((0.0, 0.0), (lat, 0.0)) for lat in (0.1, 1.0, 3.0, 12.0, 40.0)]
    pigeon = compute_metrics(*frame(pairs), protocol="pigeon")
    osv = compute_metrics(*frame(pairs), protocol="osv5m")
    d_pigeon = [haversine(0, 0, g[0], 0, 6378.137) for _, g in pairs]
    d_osv = [haversine(0, 0, g[0], 0, 6371.0) for _, g in pairs]
    assert pigeon["geoscore_mean"] == pytest.approx(np.mean([round(5000 * math.exp(-d / 1492.7)) for d in d_pigeon]))
    assert osv["geoscore_mean"] == pytest.approx(np.mean([5000 * math.exp(-d / 1492.7) for d in d_osv]), rel=1e-12)
    assert pigeon["geoscore_mean"] % 1 == pytest.approx(0.0) or (5 * pigeon["geoscore_mean"]) % 1 == pytest.approx(0)
    for name in ("geoclip", "georanker"):
        metrics = compute_metrics(*frame(pairs), protocol=name)
        assert metrics["geoscore_mean"] is None and metrics["country_acc"] is None


def test_pigeon_country_rule_nearest_polygon_for_the_truth_no_tolerance_for_the_guess():
    # Paris -> Lyon (right); truth 5 km off Brighton in the Channel -> nearest polygon GB, guess on land (right);
    # truth in Berlin, guess 3 km off the Baltic coast (wrong: the guess must lie inside the polygon)
    pairs = [((48.8566, 2.3522), (45.76, 4.84)), ((50.77, -0.14), (51.5, -0.12)), ((52.52, 13.405), (54.25, 12.0))]
    assert compute_metrics(*frame(pairs), protocol="pigeon")["country_acc"] == pytest.approx(2 / 3)


def nearest_place_brute_force(lat, lon):
    """The row of the places nearest in (lat, lon) degrees, by brute force (what reverse_geocoder's K-D tree finds)."""
    from pigeon.geography import places

    df = places()
    return int(np.argmin((df["lat"].to_numpy() - lat) ** 2 + (df["lon"].to_numpy() - lon) ** 2))


def osv_keys(row):
    from pigeon.geography import places

    p = places().iloc[row].fillna("")
    region = f"{p['admin1']}_{p['cc']}"
    return p["cc"], region, f"{p['admin2']}_{region}", f"{p['name']}_{p['admin2']}_{region}"


@pytest.mark.parametrize("name", ["osv5m", "plonk"])
def test_osv5m_admin_levels_by_the_nearest_geonames_place(name):
    truth_pt = (48.8566, 2.3522)  # Paris
    guesses = [(48.857, 2.352), (48.80, 2.13), (45.76, 4.84), (52.52, 13.405), (48.5, 7.75)]
    pred, truth = frame([(truth_pt, g) for g in guesses])
    metrics = compute_metrics(pred, truth, protocol=name)
    true_keys = osv_keys(nearest_place_brute_force(*truth_pt))
    hits = np.array([[a == b for a, b in zip(osv_keys(nearest_place_brute_force(*g)), true_keys)] for g in guesses])
    for k, key in enumerate(("acc_country", "acc_region", "acc_subregion", "acc_city")):
        assert metrics[key] == pytest.approx(hits[:, k].mean()), key
    assert metrics["country_acc"] == metrics["acc_country"] == pytest.approx(4 / 5)
    assert 0 < metrics["acc_city"] < metrics["acc_country"]
    # OSV-5M's own truth columns win when present; a missing value leaves that row out of its level
    given = truth.assign(**{"unique_country": "FR", "unique_region": [true_keys[1]] * 4 + [None],
                            "unique_sub-region": "x", "unique_city": true_keys[3]})
    metrics = compute_metrics(pred, given, protocol=name)
    assert metrics["acc_region"] == pytest.approx(hits[:4, 1].mean()) and metrics["acc_subregion"] == 0.0


def test_report_records_the_protocol(tmp_path, cli, pred, truth):
    import json

    write_report(pred, truth, tmp_path / "osv", protocol="osv5m")
    metrics = json.loads((tmp_path / "osv" / "metrics.json").read_text())
    assert metrics["protocol"] == "osv5m" and list(metrics)[0] == "protocol" and "acc_city" in metrics
    md = (tmp_path / "osv" / "metrics.md").read_text()
    assert "Protocol `osv5m`: haversine (atan2 form), R = 6371 km; within r means d < r" in md
    assert "| protocol | osv5m |" in md and "city accuracy (nearest GeoNames place)" in md
    meta = json.loads((tmp_path / "osv" / "meta.json").read_text())
    assert meta["config"]["protocol"] == "osv5m"
    pred.to_csv(tmp_path / "p.csv", index=False)
    truth.to_csv(tmp_path / "t.csv", index=False)
    result = cli("evaluate", "-p", tmp_path / "p.csv", "-t", tmp_path / "t.csv", "-o", tmp_path / "gc",
                 "--protocol", "geoclip", "--compare", tmp_path / "osv")
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "gc" / "metrics.json").read_text())["protocol"] == "geoclip"
    assert "| protocol | geoclip | osv5m |" in (tmp_path / "gc" / "comparison.md").read_text()
    assert_clean_error(cli("evaluate", "-p", tmp_path / "p.csv", "-t", tmp_path / "t.csv", "-o", tmp_path / "x",
                           "--protocol", "im2gps"), "evaluation protocol", "geoclip")
    assert not (tmp_path / "x").exists()
