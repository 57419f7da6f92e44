"""``pigeon demo``: every stage on a small Blue Marble set, and the model beats the trivial baseline."""

from __future__ import annotations

import json

import pytest

from tests.support import assert_clean_error, invoke

SMALL = ("--n", "160", "--views", "2", "--epochs", "25", "--min-size", "4", "--max-size", "12")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    result = invoke("demo", "-o", out, *SMALL)
    assert result.exit_code == 0, result.stderr
    return out, result


def test_demo_writes_every_stage_and_beats_the_baseline(demo):
    out, result = demo
    for path in ("demo.json", "data/manifest.parquet", "cells/meta.json", "embeddings/meta.json",
                 "model/config.json", "model/head.safetensors", "report/metrics.json", "report/error_cdf.png",
                 "report/error_map.png", "report/cells.png", "report/comparison.md",
                 "report/baseline/metrics.json", "report/cell/metrics.json", "report/knn/metrics.json",
                 "model/refiner/meta.json", "model/geoclip/config.json", "report/geoclip/metrics.json",
                 "model/README.md"):
        assert (out / path).is_file(), path
    model = json.loads((out / "report/metrics.json").read_text())
    baseline = json.loads((out / "report/baseline/metrics.json").read_text())
    assert model["n"] == baseline["n"] == 16
    # colours of real Blue Marble imagery locate a place far better than always guessing the mean location
    assert model["median_km"] < 0.5 * baseline["median_km"], (model, baseline)
    assert model["acc_2500km"] > baseline["acc_2500km"]
    head = json.loads((out / "report/cell/metrics.json").read_text())
    assert model["median_km"] < head["median_km"]  # refinement moves guesses off the cell centroids
    comparison = (out / "report/comparison.md").read_text()
    assert all(name in comparison for name in ("pigeon (refined)", "head only", "kNN", "spherical-mean", "geoclip"))
    assert "median error" in result.stdout and "pigeon predict" in result.stdout
    assert json.loads((out / "demo.json").read_text())["config"]["n"] == 160


def test_rerun_reuses_finished_stages(demo):
    out, _ = demo
    stamps = {p: p.stat().st_mtime_ns for p in (out / "model/head.safetensors", out / "embeddings/meta.json")}
    result = invoke("demo", "-o", out, *SMALL)
    assert result.exit_code == 0, result.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_trained_demo_model_predicts_images(demo):
    out, _ = demo
    views = sorted((out / "data/images").glob("bm00000_*.jpg"))
    result = invoke("predict", out / "model", *views, "--views", "2", "--json")
    assert result.exit_code == 0, result.stderr
    [pred] = json.loads(result.stdout)
    assert -90 <= pred["lat"] <= 90 and len(pred["top_k"]) == 5


def test_other_arguments_need_overwrite(demo):
    out, _ = demo
    assert_clean_error(invoke("demo", "-o", out, *SMALL[:-1], "13"), "--overwrite")


def test_refuses_a_non_empty_foreign_folder(tmp_path):
    (tmp_path / "thesis.tex").write_text("keep me")
    assert_clean_error(invoke("demo", "-o", tmp_path, *SMALL), "not empty")
    assert (tmp_path / "thesis.tex").read_text() == "keep me"


@pytest.mark.parametrize("args, needle", [
    (("--views", "3"), "--views"),
    (("--min-size", "0"), "--min-size"),
    (("--min-size", "9", "--max-size", "4"), "--max-size"),
    (("--n", "5"), "--n"),
    (("--epochs", "0"), "epochs"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, args, needle):
    out = tmp_path / "demo"
    assert_clean_error(invoke("demo", "-o", out, *args), needle)
    assert not out.exists()


def test_demo_reports_the_region_held_out_run_beside_the_random_split(demo):
    import numpy as np

    from pigeon.data import read_manifest, read_table
    from tests.support.geo import brute_force_km, points_of

    out, result = demo
    table = (out / "report/comparison.md").read_text()
    columns = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    methods = ("pigeon (refined)", "pigeon head only (cell centroid)", "GeoCLIP-style gallery (geoclip)",
               "nearest training image (kNN)", "spherical-mean baseline")
    assert columns == ["metric"] + [f"{m}, {split}" for split in ("random split", "region held out") for m in methods]
    assert "region held out" in result.stdout
    split = read_manifest(out / "region/manifest.parquet")
    pts = points_of(split)
    train = np.concatenate([pts[i] for i in np.flatnonzero(split["split"] == "train")])
    test = np.concatenate([pts[i] for i in np.flatnonzero(split["split"] == "test")])
    assert brute_force_km(test, train).min() >= 905  # no training view shows test ground
    region = json.loads((out / "region/report/metrics.json").read_text())
    assert region["n"] == (split["split"] == "test").sum()
    bands = read_table(out / "region/report/by_train_distance.csv").set_index("train_distance")
    assert bands.loc[">= 750 km", "n"] == region["n"]  # every region test location is far from training
    random_bands = read_table(out / "report/by_train_distance.csv")
    assert random_bands["n"].sum() == 16 and (out / "report/error_vs_train_distance.png").is_file()


def test_demo_compares_the_guess_objectives_on_both_splits(demo):
    out, _ = demo
    text = (out / "report/comparison.md").read_text()
    table = text[text.index("**By objective**"):]
    header = [line for line in table.splitlines() if line.startswith("| metric")][0]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns == ["metric"] + [f"{g}, {split}" for split in ("random split", "region held out")
                                    for g in ("mode", "distance", "score")]
    assert "ECE of P(within 200 km)" in table and "credible region: coverage" in table
    for folder in ("report/guess-distance", "report/guess-score", "region/report/guess-distance"):
        metrics = json.loads((out / folder / "metrics.json").read_text())
        assert 0 <= metrics["calibration"]["ece_200km"] <= 1 and 0 <= metrics["calibration"]["credible_coverage"] <= 1
    assert (out / "model/calibration.json").is_file() and (out / "report/reliability.png").is_file()
    card = (out / "model/README.md").read_text()
    assert "refine, guess distance" in card and "temperature" in card


def test_an_interrupted_embedding_stage_is_finished_by_a_rerun(tmp_path):
    """The demo's embeddings stopped half way (a shard missing, the store not complete): the next run embeds
    what is missing instead of refusing the store."""
    import numpy as np

    from pigeon._io import read_json, write_json
    from pigeon.demo import demo_dataset, demo_embeddings
    from pigeon.embed._store import shard_path

    from pigeon.embed import embed_manifest

    df = demo_dataset(tmp_path / "data", n=12, views=1, seed=0)
    root = tmp_path / "emb"
    whole = embed_manifest(df, "efficientnet:lite0", root)
    expected = whole.get(df["id"].astype(str).tolist())
    meta = read_json(root / "meta.json")
    write_json(root / "meta.json", {**meta, "complete": False})  # as the store is while embedding
    shard_path(root, 0).unlink()
    again = demo_embeddings(df, root, None)
    np.testing.assert_allclose(again.get(df["id"].astype(str).tolist()), expected, atol=1e-3)
    assert read_json(root / "meta.json")["complete"]
