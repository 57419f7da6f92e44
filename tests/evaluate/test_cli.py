"""``pigeon evaluate`` end to end, and every bad input as a one-line error."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pigeon.data import write_manifest
from tests.support import assert_clean_error


@pytest.fixture
def files(tmp_path, pred, truth):
    truth_path = write_manifest(truth.assign(split=["test"] * 5 + ["train"]), tmp_path / "truth.parquet")
    pred_path = tmp_path / "pred.csv"
    pred.to_csv(pred_path, index=False)
    return pred_path, truth_path


def test_evaluate_writes_the_report_and_prints_the_table(files, tmp_path, cli, expected):
    pred_path, truth_path = files
    out = tmp_path / "report"
    result = cli("evaluate", "--predictions", pred_path, "--truth", truth_path, "-o", out)
    assert result.exit_code == 0, result
    for text in ("protocol", "pigeon", "region (200 km)", "50.0 %", "66.7 %", "300.0"):
        assert text in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["acc_750km"] == pytest.approx(expected["acc_750km"])
    assert {"metrics.md", "meta.json", "error_cdf.png", "error_map.png"} <= {p.name for p in out.iterdir()}


def test_evaluate_one_split_and_compare(files, tmp_path, cli, pred):
    pred_path, truth_path = files
    first = cli("evaluate", "-p", pred_path, "-t", truth_path, "-o", tmp_path / "all")
    assert first.exit_code == 0, first
    pred.iloc[:5].to_parquet(tmp_path / "test_only.parquet")
    result = cli("evaluate", "-p", tmp_path / "test_only.parquet", "-t", truth_path, "--split", "test",
                 "-o", tmp_path / "test_split", "--compare", tmp_path / "all")
    assert result.exit_code == 0, result
    header = next(line for line in result.stdout.splitlines() if "metric" in line)
    assert header.index("test_split") < header.index("all")  # side by side, this run first
    images_row = next(line for line in result.stdout.splitlines() if "images" in line)
    assert "5" in images_row and "6" in images_row
    assert json.loads((tmp_path / "test_split" / "metrics.json").read_text())["n"] == 5


@pytest.mark.parametrize(("make_pred", "needles"), [
    (lambda p: p.iloc[1:], ("no prediction", "paris")),
    (lambda p: pd.concat([p, p.iloc[[3]]]), ("duplicate id", "vienna")),
    (lambda p: p.assign(lat=[0, 0, 0, 100, 0, 0]), ("out of range", "row 3", "vienna")),
    (lambda p: pd.concat([p, p.iloc[[0]].assign(id="nobody")]), ("not in the truth", "nobody")),
    (lambda p: p.drop(columns="lat"), ("missing column", "lat")),
])
def test_bad_predictions(files, tmp_path, cli, pred, make_pred, needles):
    _, truth_path = files
    path = tmp_path / "bad.csv"
    make_pred(pred).to_csv(path, index=False)
    assert_clean_error(cli("evaluate", "-p", path, "-t", truth_path, "-o", tmp_path / "r"), *needles)
    assert not (tmp_path / "r").exists()  # nothing written on bad input


def test_bad_truth_and_paths(files, tmp_path, cli, truth):
    pred_path, truth_path = files
    bad_truth = tmp_path / "bad_truth.csv"
    truth.assign(lon=[0, 0, 0, 0, 0, 200]).to_csv(bad_truth, index=False)
    out = tmp_path / "r"
    assert_clean_error(cli("evaluate", "-p", pred_path, "-t", bad_truth, "-o", out), "row 5 lon: 200 out of range")
    dup_truth = tmp_path / "dup_truth.csv"
    pd.concat([truth, truth.iloc[[0]]]).to_csv(dup_truth, index=False)
    assert_clean_error(cli("evaluate", "-p", pred_path, "-t", dup_truth, "-o", out), "duplicate id 'paris'")
    assert_clean_error(cli("evaluate", "-p", tmp_path / "none.csv", "-t", truth_path, "-o", out), "not found")
    assert_clean_error(cli("evaluate", "-p", pred_path, "-t", tmp_path / "none.parquet", "-o", out), "not found")
    assert_clean_error(cli("evaluate", "-p", pred_path, "-t", truth_path, "-o", out, "--split", "val"),
                       "no rows with split='val'")
    assert_clean_error(cli("evaluate", "-p", pred_path, "-t", truth_path, "-o", out, "--compare",
                           tmp_path / "no_report"), "metrics.json not found")
    assert not out.exists()
