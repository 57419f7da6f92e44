"""The ``geoclip`` placing method: built by ``pigeon train --methods``, used by ``predict``, the service and the
model folder round trip; GeoCLIP's published model refuses other backbones and names the one it needs."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pigeon.model import Geolocator, predict_manifest
from tests.support import assert_clean_error, invoke
from tests.support.distributed import torchrun
from tests.support.model import embedded_images, synthetic_store

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """480 synthetic locations (384 train, 48 val, 48 test), one view each, their store and naive cells."""
    root = tmp_path_factory.mktemp("geoclip_train")
    synthetic_store(root, n_test=48, seed=5, aux=False)
    return root


def _train(root, out, *extra):
    return ("train", root / "manifest.parquet", "--cells", root / "cells", "--embeddings", root / "emb", "-o", out,
            "--epochs", "3", "--batch-size", "384", "--dropout", "0", "--device", "cpu", "--methods",
            "refine,geoclip", "--geoclip-epochs", "4", *extra)


@pytest.fixture(scope="module")
def model(dataset):
    result = invoke(*_train(dataset, dataset / "model"))
    assert result.exit_code == 0, result.stderr
    assert "geoclip:" in result.stdout and "methods: cell, geoclip, refine, knn" in result.stdout
    return dataset / "model"


def test_train_builds_it_in_its_own_sub_folder_and_it_places_well(dataset, model):
    from pigeon.data import read_manifest
    from pigeon.embed import Embeddings
    from pigeon.evaluate import compute_metrics, mean_baseline

    assert {"config.json", "weights.safetensors", "gallery.parquet", "gallery_features.safetensors",
            "train_log.jsonl", "curves.png"} <= {p.name for p in (model / "geoclip").iterdir()}
    config = json.loads((model / "config.json").read_text())
    assert config["stages"] == ["head", "geoclip", "refiner"] and "geoclip" in config["methods"]
    geo = Geolocator.from_pretrained(model)
    df = read_manifest(dataset / "manifest.parquet")
    test, train = df[df["split"] == "test"], df[df["split"] == "train"]
    table = predict_manifest(geo, test, Embeddings.load(dataset / "emb"), top_k=5, method="geoclip")
    assert (table.groupby("id")["prob"].apply(lambda p: (np.diff(p.to_numpy()) <= 1e-7).all())).all()
    ours = compute_metrics(table, test)
    baseline = compute_metrics(mean_baseline(train, test["id"]), test)
    assert ours["median_km"] < 0.2 * baseline["median_km"], (ours, baseline)
    assert geo.resolve_method(None) == "refine"  # geoclip is there on request


def test_the_model_folder_round_trip_predicts_identically(dataset, model, tmp_path):
    geo = Geolocator.from_pretrained(model)
    X = np.random.default_rng(0).normal(size=(6, 32)).astype(np.float32)
    before = geo.predict_embeddings(X, top_k=4, method="geoclip")
    geo.save_pretrained(tmp_path / "copy")
    after = Geolocator.from_pretrained(tmp_path / "copy").predict_embeddings(X, top_k=4, method="geoclip")
    assert [p.to_dict() for p in before] == [p.to_dict() for p in after]
    assert all(p.method == "geoclip" and p.refined for p in after)


def test_a_supplied_gallery_replaces_the_training_locations(model, tmp_path, cli):
    gallery = tmp_path / "gallery.csv"
    gallery.write_text("LAT,LON\n10,20\n-33.9,18.4\n48.85,2.35\n")
    geo = Geolocator.from_pretrained(model, gallery=gallery)
    [pred] = geo.predict_embeddings(np.zeros((1, 32), np.float32), top_k=3, method="geoclip")
    assert sorted((c.lat, c.lon) for c in pred.top_k) == sorted([(10, 20), (-33.9, 18.4), (48.85, 2.35)])
    assert sum(c.prob for c in pred.top_k) == pytest.approx(1, rel=1e-5)
    bad = tmp_path / "bad.csv"
    bad.write_text("LAT,LON\n10,20\n91,5\n")
    assert_clean_error(cli("predict", model, "x.jpg", "--gallery", bad), "row 1", "line 3", "91")


def test_a_method_the_model_lacks_says_how_to_build_it(cli, tmp_path):
    import shutil

    from pigeon.model import pretrained_path

    bare = tmp_path / "bare"  # the bundled demo without its geoclip artefact
    shutil.copytree(pretrained_path("demo"), bare)
    shutil.rmtree(bare / "geoclip")
    config = json.loads((bare / "config.json").read_text())
    config["stages"] = [stage for stage in config["stages"] if stage != "geoclip"]
    config.pop("methods", None)
    (bare / "config.json").write_text(json.dumps(config))
    assert_clean_error(cli("predict", bare, "x.jpg", "--method", "geoclip"), "needs a geoclip",
                       "--methods refine,geoclip")


def test_torchrun_trains_the_method_as_one_process_does(dataset, model, tmp_path):
    run = torchrun(2, *_train(dataset, tmp_path / "two"))
    assert run.returncode == 0, run.stderr[-3000:]
    logs = [[json.loads(line) for line in (path / "geoclip" / "train_log.jsonl").read_text().splitlines()]
            for path in (model, tmp_path / "two")]
    assert len(logs[0]) == len(logs[1]) == 4
    assert [r["train_loss"] for r in logs[1]] == pytest.approx([r["train_loss"] for r in logs[0]], rel=1e-5)
    one, two = (load_file(str(path / "geoclip" / "weights.safetensors")) for path in (model, tmp_path / "two"))
    assert set(one) == set(two)
    for key in one:  # every process trained it together, each on its half of every batch
        torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-4, msg=key)


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """64 Blue Marble locations x 2 views embedded with the tiny test backbone, trained with geoclip."""
    from pigeon.data.bluemarble import make_bluemarble_dataset

    root = tmp_path_factory.mktemp("geoclip_images")
    df = make_bluemarble_dataset(root / "data", n=64, views=2, seed=2, size_px=24)
    df["split"] = np.where(np.arange(len(df)) < 48, "train", "val")
    embedded_images(root, df, min_size=4, max_size=8)
    result = invoke("train", root / "data" / "manifest.parquet", "--cells", root / "cells", "--embeddings",
                    root / "emb", "-o", root / "model", "--epochs", "2", "--device", "cpu", "--methods", "geoclip")
    assert result.exit_code == 0, result.stderr
    return root


def test_predict_and_the_service_place_images_with_it(image_model):
    from pigeon.images import load_image
    from tests.support.serve import files, running

    views = sorted((image_model / "data" / "images").glob("bm00003_*.jpg"))
    result = invoke("predict", image_model / "model", *views, "--views", "2", "--method", "geoclip", "--json")
    assert result.exit_code == 0, result.stderr
    [cli_pred] = json.loads(result.stdout)
    assert cli_pred["method"] == "geoclip" and len(cli_pred["top_k"]) == 5
    geo = Geolocator.from_pretrained(image_model / "model")
    assert geo.methods == ["cell", "geoclip"] and geo.resolve_method(None) == "geoclip"
    [pred] = geo.predict([[load_image(v) for v in views]], top_k=3, method="geoclip")
    with running(geo) as client:
        assert "geoclip" in client.get("/v1/info").json()["methods"]
        body = client.post("/v1/predict", files=files(*(v.read_bytes() for v in views)),
                           params={"method": "geoclip", "top_k": 3}).json()
    assert body["method"] == "geoclip"
    assert [c["probability"] for c in body["top_k"]] == pytest.approx([c.prob for c in pred.top_k], abs=1e-6)
    assert body["guess"]["lat"] == pytest.approx(pred.lat, abs=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("geoclip") is None,
                    reason="the 'peers' extra (geoclip==1.3.0) is not installed: pip install -e '.[peers]'")
def test_geoclips_published_model_names_the_backbone_it_needs(tmp_path, cli):
    from PIL import Image
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = tmp_path / "vit_b"
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, image_size=32, patch_size=8)).save_pretrained(folder)
    assert_clean_error(cli("predict", "geoclip", "x.jpg", "--backbone", f"clip:{folder}"), "CLIP ViT-L/14",
                       "patch_size 8", "openai/clip-vit-large-patch14")
    assert_clean_error(cli("predict", "geoclip", "x.jpg", "--backbone", "efficientnet:lite0"), "CLIP ViT-L/14",
                       "efficientnet:lite0")
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (30, 120, 60)).save(photo)
    assert_clean_error(cli("predict", "geoclip", photo), "clip-vit-large-patch14", "--backbone clip:DIR")
