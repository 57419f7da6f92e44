"""The report folder and the comparison of reports."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pigeon.data import read_table
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.evaluate import METRIC_KEYS, compare, read_metrics, write_report


def test_write_report_folder(pred, truth, expected, tmp_path):
    out = tmp_path / "report"
    metrics = write_report(pred, truth, out, config={"predictions": "p.csv"})
    on_disk = json.loads((out / "metrics.json").read_text())
    assert list(on_disk) == ["protocol", *METRIC_KEYS] and on_disk == metrics and on_disk["protocol"] == "pigeon"
    assert on_disk["acc_200km"] == pytest.approx(expected["acc_200km"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "evaluation" and meta["config"] == {"predictions": "p.csv", "protocol": "pigeon"}

    md = (out / "metrics.md").read_text()
    assert "| region (200 km) | 50.0 % |" in md
    assert "| country accuracy | 50.0 % |" in md and "Protocol `pigeon`: haversine, R = 6378.137 km" in md
    assert "| median error (km) | 300.0 |" in md

    errors = read_table(out / "errors.parquet")
    assert errors["id"].tolist() == truth["id"].tolist()
    assert errors["geoscore"].iloc[0] == round(5000 * 2.718281828459045 ** (-0.5 / 1492.7))

    for name in ("error_cdf.png", "error_map.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > 500
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_null_country_accuracy_reads_as_na(pred, truth, tmp_path, monkeypatch):
    import pigeon.geography

    monkeypatch.delattr(pigeon.geography, "countries")
    write_report(pred, truth, tmp_path / "r")
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["country_acc"] is None
    assert "| country accuracy | n/a |" in (tmp_path / "r" / "metrics.md").read_text()


def test_compare_reports(tmp_path, pred, truth):
    write_report(pred, truth, tmp_path / "good")
    write_report(pred.assign(lat=-pred["lat"]), truth, tmp_path / "flipped")
    table = compare([tmp_path / "good", tmp_path / "flipped"])
    assert table.index.tolist() == ["good", "flipped"]
    assert table.columns.tolist() == ["protocol", *METRIC_KEYS] and set(table["protocol"]) == {"pigeon"}
    assert table.loc["good", "median_km"] < table.loc["flipped", "median_km"]
    assert table.loc["good", "acc_1km"] == pytest.approx(1 / 6)


def test_compare_names_runs_by_path_when_folder_names_repeat(tmp_path, pred, truth):
    for parent in ("a", "b"):
        write_report(pred, truth, tmp_path / parent / "report")
    table = compare([tmp_path / "a" / "report", tmp_path / "b" / "report"])
    assert table.index.tolist() == [str(tmp_path / "a" / "report"), str(tmp_path / "b" / "report")]


def test_compare_errors(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="pigeon evaluate -o DIR"):
        compare([tmp_path / "missing"])
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "metrics.json").write_text('{"n": 3}')
    with pytest.raises(InputError, match="not a pigeon metrics file"):
        read_metrics(tmp_path / "odd")
    with pytest.raises(InputError, match="at least one"):
        compare([])
