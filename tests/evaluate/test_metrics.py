"""Metrics on a hand-checked fixture, strict thresholds, ranks, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pigeon.geography
from pigeon.errors import InputError
from pigeon.evaluate import METRIC_KEYS, compute_metrics, country_accuracy, match_predictions, mean_baseline
from pigeon.evaluate._metrics import summarize
from tests.support.evaluate import CASES


def test_every_metric_on_the_hand_checked_fixture(pred, truth, expected):
    metrics = compute_metrics(pred, truth)
    assert tuple(metrics) == ("protocol", *METRIC_KEYS) and metrics["protocol"] == "pigeon"
    assert metrics["n"] == expected["n"] and isinstance(metrics["n"], int)
    for key in METRIC_KEYS[1:]:
        assert metrics[key] == pytest.approx(expected[key], abs=1e-6), key


def test_country_lookup_agrees_with_the_fixture(truth, pred):
    codes = pigeon.geography.country_of(truth["lat"], truth["lon"])
    guesses = pigeon.geography.country_of(pred["lat"], pred["lon"])
    assert codes.tolist() == [c[3] for c in CASES.values()]
    assert guesses.tolist() == [c[4] for c in CASES.values()]


def test_thresholds_are_strict():
    radii = [1.0, 25.0, 200.0, 750.0, 2500.0]
    joined = pd.DataFrame({"id": list("abcde"), "lat": 0.0, "lon": 0.0, "pred_lat": 0.0, "pred_lon": 0.0,
                           "distance_km": radii})
    m = summarize(joined)
    assert [m[f"acc_{int(r)}km"] for r in radii] == [0.0, 0.2, 0.4, 0.6, 0.8]
    joined["distance_km"] = np.nextafter(np.array(radii), 0)  # a hair below each radius counts
    m = summarize(joined)
    assert [m[f"acc_{int(r)}km"] for r in radii] == [0.2, 0.4, 0.6, 0.8, 1.0]


def test_a_perfect_guess(truth):
    m = compute_metrics(truth[["id", "lat", "lon"]], truth)
    assert m["acc_1km"] == 1.0 and m["median_km"] == 0.0 and m["geoscore_mean"] == 5000.0
    # PIGEON's rule: a truth at sea takes the nearest country, which a guess at sea is not inside
    assert m["country_acc"] == pytest.approx(5 / 6)


def test_rank_one_rows_are_used_and_order_does_not_matter(pred, truth, expected):
    decoys = pred.assign(lat=-pred["lat"], rank=2, prob=0.1)
    ranked = pd.concat([decoys, pred.assign(rank=1, prob=0.9)]).sample(frac=1, random_state=0)
    assert compute_metrics(ranked, truth)["median_km"] == pytest.approx(expected["median_km"])


def test_match_predictions_is_in_truth_order(pred, truth):
    joined = match_predictions(pred.iloc[::-1], truth)
    assert joined["id"].tolist() == truth["id"].tolist()
    assert joined.columns.tolist() == ["id", "lat", "lon", "pred_lat", "pred_lon", "distance_km"]
    np.testing.assert_allclose(joined["distance_km"], [c[2] for c in CASES.values()], rtol=1e-9)


def test_column_names_are_case_insensitive(pred, truth, expected):
    m = compute_metrics(pred.rename(columns=str.upper), truth.rename(columns={"lat": "Lat"}))
    assert m["mean_km"] == pytest.approx(expected["mean_km"])


def test_country_accuracy_is_null_without_country_lookup(monkeypatch, pred, truth):
    monkeypatch.delattr(pigeon.geography, "countries")
    assert compute_metrics(pred, truth)["country_acc"] is None


def test_country_accuracy_takes_the_nearest_country_for_a_truth_at_sea():
    # 5 km off Brighton: nearest polygon GB; the guess in London is inside it, the one in Paris is not
    assert country_accuracy([50.77, 50.77], [-0.14, -0.14], [51.5, 48.86], [-0.12, 2.35]) == 0.5
    assert country_accuracy([], [], [], []) is None


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda p, t: (p.drop(columns="lon"), t), "predictions: missing column.*lon"),
    (lambda p, t: (p, t.drop(columns="lat")), "truth: missing column.*lat"),
    (lambda p, t: (p.iloc[:0], t), "predictions: no rows"),
    (lambda p, t: (p.iloc[1:], t), r"1 truth id\(s\) have no prediction: 'paris'.*--split"),
    (lambda p, t: (pd.concat([p, p.iloc[[0]].assign(id="ghost")]), t), r"1 id\(s\) not in the truth: 'ghost'"),
    (lambda p, t: (pd.concat([p, p.iloc[[2]]]), t), r"duplicate id\(s\) 'madrid' \(rows 2, 6\)"),
    (lambda p, t: (p, pd.concat([t, t.iloc[[1]]])), r"truth: duplicate id\(s\) 'berlin'"),
    (lambda p, t: (p.assign(lat=[0, 91, 0, 0, -95, 0]), t),
     r"2 coordinate\(s\).*row 1 lat: 91 out of range \[-90, 90\] \(id 'berlin'\).*row 4 lat: -95 .*\(id 'pacific'\)"),
    (lambda p, t: (p.assign(lon=[0, 0, 0, 0, 0, "x"]), t), r"row 5 is not data \(id 'brasilia'\): lon='x' is not a number"),
    (lambda p, t: (p, t.assign(lon=[0, 0, 0, 0, 0, 181.0])), r"truth: 1 coordinate.*lon: 181"),
    (lambda p, t: (p.assign(rank=[1, 1, 1, 1, 1, 0]), t), r"rank must be a whole number.*row 5 rank=0"),
    (lambda p, t: (p.assign(rank=[1, 1, 1, 1, 1, 2]), t), r"1 id\(s\) have no rank-1 row: 'brasilia'"),
    (lambda p, t: (pd.concat([p.assign(rank=1), p.iloc[[0]].assign(rank=1)]), t), r"duplicate id\(s\) 'paris'"),
])
def test_bad_inputs_name_the_rows(pred, truth, mutate, match):
    p, t = mutate(pred, truth)
    with pytest.raises(InputError, match=match) as err:
        compute_metrics(p, t)
    assert "\n" not in str(err.value)


def test_long_lists_are_shortened(truth):
    many = pd.DataFrame({"id": [f"x{i}" for i in range(20)], "lat": 0.0, "lon": 0.0})
    with pytest.raises(InputError, match="'x12' and 15 more"):
        compute_metrics(pd.concat([truth[["id", "lat", "lon"]], many]), truth)


def test_mean_baseline_guesses_the_spherical_mean_for_every_id():
    train = pd.DataFrame({"lat": [0.0, 0.0], "lon": [179.0, -179.0]})  # across the dateline: mean at 180, not 0
    pred = mean_baseline(train, ["a", "b", "c"])
    assert pred["id"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(pred["lat"], 0.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(pred["lon"]), 180.0, atol=1e-9)
