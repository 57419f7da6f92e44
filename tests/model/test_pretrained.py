"""The bundled demo model loads by name and locates Blue Marble views it never saw."""

from __future__ import annotations

from pigeon.data import make_bluemarble_dataset
from pigeon.evaluate import compute_metrics, mean_baseline
from pigeon.model import PRETRAINED, Geolocator, predict_manifest, pretrained_path
from tests.support import assert_clean_error


def test_bundled_demo_model_generalises_to_new_locations(tmp_path):
    assert "demo" in PRETRAINED and (pretrained_path("demo") / "config.json").is_file()
    geo = Geolocator.from_pretrained("demo")
    # locations drawn with another seed than the demo's training data (seed 0)
    df = make_bluemarble_dataset(tmp_path, n=48, views=4, seed=1234)
    pred = predict_manifest(geo, df, top_k=1)
    baseline = compute_metrics(mean_baseline(df, df["id"]), df)
    metrics = compute_metrics(pred, df)
    assert metrics["median_km"] < 0.4 * baseline["median_km"], (metrics, baseline)


def test_a_folder_of_the_same_name_wins(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert_clean_error(cli("predict", "demo", "x.jpg"), "config.json")
