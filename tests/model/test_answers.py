"""The posterior in a model: calibrated at training, stored in the folder, guesses per objective, P(within r),
credible regions, the unseen score, old folders unchanged, and the CLI's refusals of bad requests."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pigeon.errors import InputError
from pigeon.geo import RADII_KM
from pigeon.posterior import GUESSES
from tests.support import assert_clean_error
from tests.support.model import e2e_manifest as _manifest


@pytest.fixture(scope="module")
def model(work, tmp_path_factory):
    from pigeon.model import TrainConfig, train

    out = tmp_path_factory.mktemp("answers") / "model"
    train(_manifest(work), work / "cells", work / "emb", out, TrainConfig(epochs=4, batch_size=32, lr=0.01,
                                                                           device="cpu"))
    return out


@pytest.fixture(scope="module")
def queries(work):
    from pigeon.data import read_manifest
    from pigeon.embed import Embeddings

    test = read_manifest(_manifest(work)).query("split == 'test'")
    return Embeddings.load(work / "emb").get(test["id"].astype(str).tolist()), test


def test_training_fits_and_stores_the_calibration(model):
    from pigeon.model import Geolocator

    config = json.loads((model / "config.json").read_text())
    stored = json.loads((model / "calibration.json").read_text())
    by_guess = stored["validation"]["mean_km_by_guess"]  # the default guess: mode unless another is clearly nearer
    wins = stored["validation"]["guess_wins_over_mode"]
    clear = [g for g in GUESSES if g == "mode" or wins[g] >= 0.95]
    assert set(by_guess) == set(GUESSES) and set(wins) == set(GUESSES) - {"mode"}
    assert config["posterior"]["guess"] in clear and by_guess[config["posterior"]["guess"]] == min(
        by_guess[g] for g in clear)
    assert config["calibration"]["file"] == "calibration.json"
    assert stored["temperature"] > 0 and stored["fitted_on"]["refiner"]["gallery"] == config["data"]["n_train"]
    assert stored["validation"]["nll_after"] <= stored["validation"]["nll_before"] + 1e-9
    assert len(stored["reference"]) > 2 and "temperature" in (model / "README.md").read_text()
    geo = Geolocator.from_pretrained(model)
    assert geo.calibration.temperature == pytest.approx(stored["temperature"])
    assert geo.posterior_config.guess == config["posterior"]["guess"]


def test_another_objective_replaces_mode_only_when_clearly_nearer():
    from pigeon.model import pick_guess

    rng = np.random.default_rng(0)
    mode = rng.gamma(2.0, 500.0, 200)
    noisy = mode + rng.normal(-20.0, 400.0, 200)  # 20 km better on average, but by noise
    clear = mode * 0.6  # 40 % nearer on every row
    assert pick_guess({"mode": mode, "distance": noisy, "score": mode + 1.0})[0] == "mode"
    guess, wins = pick_guess({"mode": mode, "distance": noisy, "score": clear})
    assert guess == "score" and wins["score"] == 1.0 and wins["distance"] < 0.95
    both = pick_guess({"mode": mode, "distance": mode * 0.5, "score": clear})
    assert both[0] == "distance"  # the nearest of the clear winners


def test_the_default_guess_is_the_nearest_on_validation(model, work):
    """Each objective's recorded validation error is its guesses' mean km there, measured again here."""
    from pigeon.data import read_manifest
    from pigeon.embed import Embeddings
    from pigeon.geo import haversine_km
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained(model)
    val = read_manifest(_manifest(work)).query("split == 'val'")
    X = Embeddings.load(work / "emb").get(val["id"].astype(str).tolist())
    recorded = geo.calibration.validation["mean_km_by_guess"]
    for guess in GUESSES:
        preds = geo.predict_embeddings(X, top_k=1, guess=guess)
        km = haversine_km(np.array([p.lat for p in preds]), np.array([p.lon for p in preds]), val["lat"], val["lon"])
        assert float(np.mean(km)) == pytest.approx(recorded[guess], abs=0.06)


def test_p_within_goes_through_the_map_fitted_on_validation(model, queries):
    from pigeon.model import Geolocator
    from pigeon.posterior import WITHIN_GRID

    geo = Geolocator.from_pretrained(model)
    within = geo.calibration.within
    assert set(within) == set(GUESSES)
    assert all(len(maps) == len(RADII_KM) and all(len(m) == len(WITHIN_GRID) for m in maps) for maps in within.values())
    X, _ = queries
    for guess in GUESSES:
        preds = geo.predict_embeddings(X, guess=guess)
        fitted = np.array([[p.p_within[r] for r in RADII_KM] for p in preds])
        unseen = np.array([p.unseen for p in preds])
        raw_geo = Geolocator.from_pretrained(model)
        raw_geo.calibration = raw_geo.calibration.replace(within={})
        raw = np.array([[p.p_within[r] for r in RADII_KM] for p in raw_geo.predict_embeddings(X, guess=guess)])
        np.testing.assert_allclose(fitted, geo.calibration.within_probabilities(guess, raw, unseen), atol=1e-9)
        assert ((0 < fitted) & (fitted < 1)).all()


def test_every_objective_answers_with_its_posterior(model, queries):
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained(model)
    X, _ = queries
    by = {g: geo.predict_embeddings(X, top_k=3, guess=g) for g in ("mode", "distance", "score")}
    for g, preds in by.items():
        for p in preds:
            assert p.guess == g and list(p.p_within) == list(RADII_KM)
            assert np.all(np.diff(list(p.p_within.values())) >= -1e-12) and 0 <= p.unseen <= 1
            assert p.credible.mass >= 0.9 - 1e-6 and p.credible.area_km2 > 0 and p.cell == p.top_k[0].cell
            assert (p.lat, p.lon) == (p.top_k[0].lat, p.top_k[0].lon) and p.probs.sum() == pytest.approx(1, abs=1e-4)
            assert p.to_dict()["p_within"]["200km"] == p.p_within[200]
    for m, d, s in zip(by["mode"], by["distance"], by["score"]):  # each objective's guess is best at its own game
        assert d.expected_km <= m.expected_km + 1e-3
        assert s.probs[s.cell] >= 0
    geo_distance = [p.expected_km for p in by["distance"]]
    assert np.isfinite(geo_distance).all()
    others = [c.prob for c in by["distance"][0].top_k[1:]]
    assert others == sorted(others, reverse=True)  # after the guess, the most probable other cells


def test_the_score_guess_has_the_best_expected_score(model, queries):
    from pigeon.model import Geolocator
    from pigeon.posterior import Posterior

    geo = Geolocator.from_pretrained(model)
    X, _ = queries
    guesses = {g: geo.predict_embeddings(X, guess=g) for g in ("mode", "score")}
    post = Posterior(np.stack([p.probs for p in guesses["score"]]), geo.support, geo.posterior_config)
    expected = {g: post.expected(np.array([[p.lat, p.lon] for p in preds]), "score") for g, preds in guesses.items()}
    assert np.all(expected["score"] >= expected["mode"] - 1e-3)


def test_the_unseen_score_is_higher_far_from_the_gallery(model, queries):
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained(model)
    X, _ = queries
    rng = np.random.default_rng(0)
    far = X + rng.normal(0, 4 * X.std(), X.shape).astype(np.float32)
    near = geo.predict_embeddings(X)
    away = geo.predict_embeddings(far)
    assert np.mean([p.unseen for p in away]) > np.mean([p.unseen for p in near]) + 0.3
    assert min(p.unseen for p in away) > 0.9


def _before_calibration(folder, dest):
    """A copy of a model folder as it was before the posterior: no calibration.json, no posterior settings."""
    shutil.copytree(folder, dest)
    (dest / "calibration.json").unlink()
    config = json.loads((dest / "config.json").read_text())
    config.pop("posterior")
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def test_a_folder_without_calibration_answers_exactly_as_its_stages(queries, tmp_path):
    """The bundled demo as a folder made before calibration: with guess mode the answer is the placer's, the
    probabilities the head's, untouched by the posterior stage."""
    from pigeon.model import Geolocator
    from pigeon.model._geolocator import resolve_model_path
    from pigeon.model._prediction import top_cells

    legacy = _before_calibration(resolve_model_path("demo"), tmp_path / "legacy")
    geo = Geolocator.from_pretrained(legacy)
    assert geo.calibration.identity and geo.posterior_config.guess == "mode"
    X = np.asarray(geo.refiner._gallery_emb[:40], np.float32) + 0.2
    for method in ("cell", "refine", "knn"):
        preds = geo.predict_embeddings(X, top_k=5, method=method, guess="mode")
        probs = geo.forward_embeddings(X)["probs"]
        placement = geo.place_embeddings(X, 5, method)
        for n, p in enumerate(preds):
            np.testing.assert_array_equal(p.probs, probs[n])
            assert [c.cell for c in p.top_k] == placement.cells[n, :5].tolist()
            assert [(c.lat, c.lon) for c in p.top_k] == [tuple(v) for v in placement.latlon[n, :5].tolist()]
            assert [c.prob for c in p.top_k] == placement.probs[n, :5].tolist()  # the placer's
            assert [c.cell_prob for c in p.top_k] == [float(probs[n, c]) for c in placement.cells[n, :5]]
        assert [p.cell for p in preds] == (placement.cells[:, 0].tolist() if method != "cell"
                                           else top_cells(probs, 1)[:, 0].tolist())
    assert geo.predict_embeddings(X[:2])[0].guess == "mode"  # its default


def test_save_keeps_a_legacy_folder_legacy_and_a_stale_calibration_is_ignored(model, tmp_path):
    from pigeon.model import Geolocator

    legacy = _before_calibration(model, tmp_path / "legacy")
    geo = Geolocator.from_pretrained(legacy)
    assert geo.calibration.identity and geo.posterior_config.guess == "mode"
    geo.save_pretrained(legacy)
    assert not (legacy / "calibration.json").exists()
    stale = tmp_path / "stale"
    shutil.copytree(model, stale)
    stored = json.loads((stale / "calibration.json").read_text())
    stored["fitted_on"]["head"] = "0" * 16
    (stale / "calibration.json").write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="pigeon calibrate"):
        assert Geolocator.from_pretrained(stale).calibration.identity


def test_regression_outputs_stay_in_their_physical_and_training_ranges():
    from pigeon.model import VALID_RANGES, Geolocator, Standardiser

    train = np.array([[100.0, 5.0, 10.0, 20.0, 50.0, 30.0], [900.0, 50.0, 25.0, 10.0, 90.0, 60.0]])
    s = Standardiser.fit(tuple(VALID_RANGES), train)
    wild = np.array([[-40.0] * 6, [40.0] * 6, [0.0] * 6])
    values = s.inverse_transform(wild)
    np.testing.assert_allclose(values[0], train.min(axis=0))  # a head's wild output: the training extremes
    np.testing.assert_allclose(values[1], train.max(axis=0))
    assert ((values[2] > train.min(axis=0)) & (values[2] < train.max(axis=0))).all()  # inside: unchanged
    again = Standardiser.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_allclose(again.inverse_transform(wild), values)
    old = Standardiser.from_dict({k: v for k, v in s.to_dict().items() if k not in ("low", "high")})
    earth = old.inverse_transform(wild)  # a file without the training range: the Earth's
    for j, column in enumerate(VALID_RANGES):
        assert VALID_RANGES[column][0] <= earth[:, j].min() and earth[:, j].max() <= VALID_RANGES[column][1]
    unknown = Standardiser.fit(tuple(VALID_RANGES), np.where(np.arange(6) == 4, np.nan, train))  # a column all NaN
    low, high = unknown.bounds()
    assert (low[4], high[4]) == VALID_RANGES["precip_mm"]
    geo = Geolocator.from_pretrained("demo")  # once said -1.0 people per km² for a Kauai photo
    rng = np.random.default_rng(0)
    out = geo.forward_embeddings(rng.normal(0, 3, (64, geo.head.cfg.in_dim)).astype(np.float32))
    low, high = geo.standardiser.bounds()
    assert (out["regression"] >= low - 1e-9).all() and (out["regression"] <= high + 1e-9).all()


def test_predictions_carry_the_posterior_and_evaluate_measures_its_calibration(cli, model, work, tmp_path):
    out = tmp_path / "pred.csv"
    result = cli("predict", model, "--manifest", _manifest(work), "--split", "test", "-o", out,
                 "--embeddings", work / "emb", "--guess", "score", "--credible", "0.8")
    assert result.exit_code == 0 and "guess score" in result.stdout, result.stderr
    pred = pd.read_csv(out, dtype={"id": str, "credible_cells": str})
    first = pred[pred["rank"] == 1]
    assert (first["guess"] == "score").all() and (first["credible_q"] == 0.8).all()
    assert first[[f"p_within_{r}km" for r in RADII_KM]].notna().all().all()
    assert pred.loc[pred["rank"] > 1, "p_within_200km"].isna().all()
    report = tmp_path / "report"
    result = cli("evaluate", "--predictions", out, "--truth", _manifest(work), "--split", "test", "-o", report,
                 "--cells", model / "cells")
    assert result.exit_code == 0, result.stderr
    calibration = json.loads((report / "metrics.json").read_text())["calibration"]
    assert set(calibration) >= {f"ece_{r}km" for r in RADII_KM} | {"credible_coverage", "credible_area_km2_mean"}
    assert 0 <= calibration["ece_200km"] <= 1 and 0 <= calibration["credible_coverage"] <= 1
    assert (report / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "ECE of P(within 200 km)" in (report / "metrics.md").read_text()


def test_the_cli_prints_and_maps_the_posterior(cli, model, work, tmp_path):
    from pigeon.data import image_views, read_manifest

    views = image_views(read_manifest(_manifest(work)))[0]
    result = cli("predict", model, *views, "--views", "2", "--guess", "distance")
    assert result.exit_code == 0, result.stderr
    assert "P(within 1 km" in result.stdout and "credible region" in result.stdout
    result = cli("predict", model, *views, "--views", "2", "--json", "--no-p-within")
    [pred] = json.loads(result.stdout)
    default = json.loads((model / "config.json").read_text())["posterior"]["guess"]
    assert pred["p_within"] is None and pred["guess"] == default and pred["credible"]["q"] == 0.9


@pytest.mark.parametrize("args, needles", [
    (("--guess", "median"), ("unknown guess objective 'median'", "mode, distance or score")),
    (("--credible", "1.5"), ("(0, 1)", "--credible 0.9")),
    (("--credible", "0"), ("(0, 1)",)),
])
def test_bad_answer_options_are_one_line_errors(cli, model, work, args, needles):
    from pigeon.data import image_views, read_manifest

    views = image_views(read_manifest(_manifest(work)))[0]
    assert_clean_error(cli("predict", model, *views, "--views", "2", *args), *needles)


def test_p_within_from_a_model_without_a_gallery_names_the_fix(cli, model, work, tmp_path):
    from pigeon.data import image_views, read_manifest
    from pigeon.model import Geolocator

    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    shutil.rmtree(bare / "refiner")
    (bare / "calibration.json").unlink()
    config = json.loads((bare / "config.json").read_text())
    config["stages"] = ["head"]
    (bare / "config.json").write_text(json.dumps(config))
    views = image_views(read_manifest(_manifest(work)))[0]
    assert_clean_error(cli("predict", bare, *views, "--views", "2", "--p-within"), "no gallery", "pigeon refine build")
    assert_clean_error(cli("predict", bare, "--manifest", _manifest(work), "-o", tmp_path / "p.csv", "--p-within"),
                       "no gallery")
    result = cli("predict", bare, *views, "--views", "2", "--json")
    [pred] = json.loads(result.stdout)
    assert result.exit_code == 0 and pred["p_within"] is None and pred["unseen"] is None
    with pytest.raises(InputError, match="no gallery"):
        Geolocator.from_pretrained(bare).check_answer(p_within=True)


def test_calibrate_command_fits_an_old_folder(cli, model, work, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(model, old)
    (old / "calibration.json").unlink()
    result = cli("calibrate", old, "--manifest", _manifest(work), "--embeddings", work / "emb", "--guess", "score")
    assert result.exit_code == 0 and "temperature" in result.stdout, result.stderr
    assert json.loads((old / "calibration.json").read_text())["n_val"] > 0
    assert json.loads((old / "config.json").read_text())["posterior"]["guess"] == "score"
    assert_clean_error(cli("calibrate", old, "--manifest", _manifest(work), "--split", "nope"), "no 'nope' rows")
    assert_clean_error(cli("calibrate", "demo", "--manifest", _manifest(work)), "read-only")


def test_a_credible_region_is_one_antimeridian_safe_multipolygon():
    from shapely.geometry import GeometryCollection, LineString, Point, box

    from pigeon.model._prediction import region_geometry

    cut = np.array([box(179, -10, 180, 10), box(-180, -10, -179, 10), box(179, 10, 180, 20),
                    GeometryCollection([box(0, 0, 1, 1), LineString([(5, 5), (6, 6)])]), Point(9, 9)], dtype=object)
    region = region_geometry(cut, [0, 1, 2])
    assert region.geom_type == "MultiPolygon" and len(region.geoms) == 2  # east of 180 merged, west apart
    assert region.bounds == (-180.0, -10.0, 180.0, 20.0) and region.area == pytest.approx(50.0)
    assert region_geometry(cut, [3, 4]).geom_type == "Polygon"  # slivers of simplified outlines dropped
