"""Calibration of P(within r) and credible regions in ``pigeon evaluate``: perfectly calibrated predictions give an
ECE near 0, miscalibrated ones do not, and the report writes the reliability diagram and the coverage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pigeon.evaluate import calibration_metrics, expected_calibration_error, match_predictions, reliability, write_report
from pigeon.geo import RADII_KM, destination_point


def test_perfectly_calibrated_probabilities_have_an_ece_near_zero():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    hit = rng.uniform(size=p.size) < p
    assert expected_calibration_error(p, hit) < 0.005
    assert expected_calibration_error(p ** 3, hit) > 0.1  # the same outcomes, under-confident probabilities
    table = reliability(p, hit)
    assert table["n"].sum() == p.size and np.abs(table["p"] - table["rate"]).max() < 0.01


def _calibrated_set(n: int, rng):
    """Predictions whose P(within r) are exactly the probabilities with which the truth was placed that near."""
    truth = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "lat": rng.uniform(-50, 50, n), "lon": rng.uniform(-170, 170, n)})
    # the error is drawn from a known law: P(d < r) = 1 - exp(-r / s) with a per-row scale s
    s = rng.choice([20.0, 300.0, 2000.0], n)
    d = rng.exponential(s)
    lat, lon = destination_point(truth["lat"], truth["lon"], rng.uniform(0, 360, n), d)
    pred = pd.DataFrame({"id": truth["id"], "rank": 1, "lat": lat, "lon": lon})
    for r in RADII_KM:
        pred[f"p_within_{r}km"] = 1 - np.exp(-r / s)
    return pred, truth


def test_report_writes_the_reliability_diagram_and_the_calibration_entry(tmp_path):
    pred, truth = _calibrated_set(6000, np.random.default_rng(1))
    metrics = write_report(pred, truth, tmp_path / "report")
    stored = json.loads((tmp_path / "report" / "metrics.json").read_text())["calibration"]
    assert stored == pytest.approx(metrics["calibration"])
    for r in RADII_KM:
        assert stored[f"ece_{r}km"] < 0.03, (r, stored)
    assert (tmp_path / "report" / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "ECE of P(within 750 km)" in (tmp_path / "report" / "metrics.md").read_text()
    worse = pred.assign(**{f"p_within_{r}km": 1.0 for r in RADII_KM})  # always sure
    assert write_report(worse, truth, tmp_path / "worse")["calibration"]["ece_200km"] > 0.3


class TwoCells:
    """The part of the GeoCells interface coverage needs: west (0) and east (1) of the prime meridian."""

    def assign(self, lat, lon):
        return (np.asarray(lon) >= 0).astype(int)


def test_credible_region_coverage_and_area(truth, pred):
    pred = pred.assign(rank=1, credible_q=0.9, credible_area_km2=[1e6, 2e6, 1e6, 2e6, 1e6, 2e6],
                       credible_cells=["1", "0;1", "0", "0", "1", "0"])
    joined = match_predictions(pred, truth)
    out = calibration_metrics(pred, joined, TwoCells())
    east = (truth["lon"] >= 0).to_numpy()
    cells = [{int(c) for c in text.split(";")} for text in pred["credible_cells"]]
    assert out["credible_coverage"] == pytest.approx(np.mean([int(e) in c for e, c in zip(east, cells)]))
    assert out["credible_area_km2_mean"] == pytest.approx(1.5e6) and out["credible_q"] == 0.9
    assert calibration_metrics(pred, joined)["credible_coverage"] is None  # needs the cells
    assert "ece_200km" not in out


def test_predictions_without_probabilities_have_no_calibration_entry(pred, truth, tmp_path):
    metrics = write_report(pred, truth, tmp_path / "plain")
    assert "calibration" not in metrics and not (tmp_path / "plain" / "reliability.png").exists()


def test_only_rank_one_rows_are_judged(truth, pred):
    rows = pred.assign(rank=1, p_within_1km=1.0, p_within_25km=1.0, p_within_200km=1.0, p_within_750km=1.0,
                       p_within_2500km=1.0)
    second = rows.assign(rank=2, lat=0.0, lon=0.0, p_within_200km=np.nan)
    both = pd.concat([rows, second], ignore_index=True)
    joined = match_predictions(both, truth)
    out = calibration_metrics(both, joined)
    d = joined["distance_km"].to_numpy()
    assert out["ece_2500km"] == pytest.approx(1 - np.mean(d < 2500))
