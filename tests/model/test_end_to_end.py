"""Manifest + geocells + embeddings store -> ``pigeon train`` -> model folder -> ``pigeon predict`` -> evaluate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from pigeon.cells import GeoCells
from pigeon.model import TrainConfig
from pigeon.refine import RefineConfig
from pigeon.errors import PigeonError
from tests.support import assert_clean_error



def _manifest(work):  # the manifest inside the dataset folder (image paths are relative to it)
    return work / "data" / "manifest.parquet"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 2-view Blue Marble dataset with auxiliary columns, its tiny-backbone embeddings and naive cells."""
    from pigeon.data.bluemarble import make_bluemarble_dataset
    from tests.support.model import embedded_images

    root = tmp_path_factory.mktemp("e2e")
    df = make_bluemarble_dataset(root / "data", n=160, views=2, seed=0, size_px=24)
    rng = np.random.default_rng(0)
    df["koppen"] = np.where(df["lat"].abs() < 23, "Aw", "Cfb")
    df["elevation_m"] = 200 + 10 * df["lat"].abs()
    df["taken_at"] = pd.to_datetime(rng.integers(1, 13, len(df)).astype(str), format="%m").strftime("2020-%m-15")
    embedded_images(root, df, min_size=5, max_size=20)
    return root


@pytest.fixture(scope="module")
def model(work, tmp_path_factory):
    from tests.support import invoke

    out = work / "model"
    result = invoke("train", _manifest(work), "--cells", work / "cells", "--embeddings", work / "emb",
                    "-o", out, "--epochs", "4", "--batch-size", "32", "--lr", "0.01", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert "best epoch" in result.stdout
    return out


def test_model_folder_is_complete_and_unpickled(model):
    names = {p.name for p in model.iterdir()}
    assert {"config.json", "head.safetensors", "cells", "standardiser.json", "metrics.json", "train_log.jsonl",
            "curves.png", "meta.json", "checkpoint", "refiner", "README.md"} <= names
    config = json.loads((model / "config.json").read_text())
    assert config["backbone"] == "pigeontest:tiny" and config["head"]["in_dim"] == 32
    assert config["head"]["n_climate"] == len(config["climate_classes"]) and config["head"]["n_months"] == 12
    assert config["head"]["regression"] == ["elevation_m"] and config["train"]["tau_km"] == TrainConfig().tau_km
    assert config["versions"]["python"] and config["stages"] == ["head", "refiner"]
    assert config["methods"] == ["cell", "refine", "knn"]
    refiner = json.loads((model / "refiner" / "meta.json").read_text())["config"]
    assert refiner["refine"] == RefineConfig().to_dict()  # the default (street-view) preset
    assert refiner["backbone"] == "pigeontest:tiny" and refiner["n_gallery"] == config["data"]["n_train"]
    assert json.loads((model / "meta.json").read_text())["kind"] == "model"
    assert len((model / "train_log.jsonl").read_text().splitlines()) == 4
    assert (model / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in model.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt", ".pth")]
    assert set(load_file(str(model / "head.safetensors"))) >= {"geocell.classifier.weight", "climate.weight"}


def test_save_load_gives_identical_predictions(model, work, tmp_path):
    from pigeon.embed import Embeddings
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained(model)
    X = Embeddings.load(work / "emb").get(Embeddings.load(work / "emb").ids[:10])
    geo.save_pretrained(tmp_path / "copy")
    again = Geolocator.from_pretrained(tmp_path / "copy")
    a, b = geo.predict_embeddings(X), again.predict_embeddings(X)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.probs, q.probs)
        assert (p.lat, p.lon, p.top_k, p.aux) == (q.lat, q.lon, q.top_k, q.aux)


def test_predict_images_views_json_and_probability_map(cli, model, work, tmp_path):
    from pigeon.data import image_views, read_manifest

    views = image_views(read_manifest(_manifest(work)))
    images = [*views[0], *views[1]]
    result = cli("predict", model, *images, "--views", "2", "--json", "--top-k", "3",
                 "--probability-map", tmp_path / "map.geojson")
    assert_clean_error(result, "exactly one location")
    result = cli("predict", model, *views[0], "--views", "2", "--json", "--top-k", "3",
                 "--probability-map", tmp_path / "map.geojson")
    assert result.exit_code == 0, result.stderr
    [pred] = json.loads(result.stdout)
    assert pred["images"] == [str(p) for p in views[0]] and len(pred["top_k"]) == 3
    assert {"climate", "month", "elevation_m"} <= set(pred["aux"])
    gj = json.loads((tmp_path / "map.geojson").read_text())
    n_cells = json.loads((model / "config.json").read_text())["cells"]["n_cells"]
    assert len(gj["features"]) == n_cells
    assert sum(f["properties"]["prob"] for f in gj["features"]) == pytest.approx(1, abs=1e-4)
    table = cli("predict", model, *images, "--views", "2")
    assert table.exit_code == 0 and table.stdout.count("rank") == 2


def test_predict_manifest_is_read_by_evaluate(cli, model, work, tmp_path):
    from pigeon.data import read_manifest
    from pigeon.evaluate import compute_metrics

    out = tmp_path / "pred.csv"
    for extra in ((), ("--embeddings", work / "emb")):
        result = cli("predict", model, "--manifest", _manifest(work), "--split", "test", "-o", out, *extra)
        assert result.exit_code == 0, result.stderr
        pred = pd.read_csv(out, dtype={"id": str})
        test = read_manifest(_manifest(work)).query("split == 'test'")
        assert len(pred) == 5 * len(test) and set(pred["rank"]) == {1, 2, 3, 4, 5}
        metrics = compute_metrics(pred, test)
        assert metrics["n"] == len(test)
    images_pred = pd.read_csv(out, dtype={"id": str})  # from cached embeddings; the image path agrees:
    cli("predict", model, "--manifest", _manifest(work), "--split", "test", "-o", tmp_path / "b.csv")
    np.testing.assert_allclose(pd.read_csv(tmp_path / "b.csv")["prob"], images_pred["prob"], atol=2e-3)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_streamed_manifest_predictions_equal_the_whole_manifest_at_once(model, work, tmp_path, monkeypatch, suffix):
    """A manifest is predicted batch by batch (one batch in memory) into the same table as in one piece."""
    import pigeon.model._predict as predict_module
    from pigeon._io import read_table
    from pigeon.data import read_manifest, select_split
    from pigeon.embed import Embeddings
    from pigeon.model import Geolocator, predict_manifest, predict_manifest_file

    geo, emb = Geolocator.from_pretrained(model), Embeddings.load(work / "emb")
    whole = predict_manifest(geo, select_split(read_manifest(_manifest(work)), "test"), emb)
    seen = []
    monkeypatch.setattr(predict_module, "predict_manifest", lambda geo, df, *a, **k: (
        seen.append(len(df)), predict_manifest(geo, df, *a, **k))[1])
    run = predict_manifest_file(geo, _manifest(work), tmp_path / f"p.{suffix}", split="test", embeddings=emb,
                                batch_rows=7)
    streamed = read_table(run.path)
    assert len(seen) > 2 and max(seen) <= 7 and run.n_rows == run.n_predicted == whole["id"].nunique()
    pd.testing.assert_frame_equal(streamed.astype({"id": str}).reset_index(drop=True)[["id", "rank", "cell"]],
                                  whole.reset_index(drop=True)[["id", "rank", "cell"]], check_dtype=False)
    np.testing.assert_allclose(streamed[["lat", "lon", "prob"]], whole[["lat", "lon", "prob"]], atol=1e-6)  # float32 batches
    meta = streamed.attrs["meta"]
    assert meta["kind"] == "predictions" and meta["config"]["method"] == geo.resolve_method(None)


def test_a_failed_streamed_prediction_leaves_no_file(model, work, tmp_path, monkeypatch):
    import pigeon.model._predict as predict_module
    from pigeon.embed import Embeddings
    from pigeon.model import Geolocator, predict_manifest, predict_manifest_file

    geo, emb = Geolocator.from_pretrained(model), Embeddings.load(work / "emb")
    calls = []

    def second_batch_fails(geo, df, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise PigeonError("disk full")
        return predict_manifest(geo, df, *args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_manifest", second_batch_fails)
    with pytest.raises(PigeonError, match="disk full"):
        predict_manifest_file(geo, _manifest(work), tmp_path / "p.csv", embeddings=emb, batch_rows=10)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with pytest.raises(PigeonError, match="no rows with split='val'"):
        only_train = tmp_path / "train.parquet"
        from pigeon.data import read_manifest, write_manifest

        df = read_manifest(_manifest(work))
        write_manifest(df[df["split"] == "train"], only_train)  # its images are not read: the embeddings are
        predict_manifest_file(geo, only_train, tmp_path / "p.csv", split="val", embeddings=emb)
    assert not (tmp_path / "p.csv").exists()


def test_incomplete_or_inconsistent_model_folders(cli, model, tmp_path):

    broken = tmp_path / "m1"
    shutil.copytree(model, broken)
    (broken / "head.safetensors").unlink()
    assert_clean_error(cli("predict", broken, "x.jpg"), "head.safetensors", "pigeon train")

    other = tmp_path / "m2"
    shutil.copytree(model, other)
    shutil.rmtree(other / "cells")
    cells = GeoCells.load(model / "cells")
    GeoCells.build(cells.centroids[:, 0], cells.centroids[:, 1], method="naive", min_size=1,
                   max_size=max(2, len(cells) // 3)).save(other / "cells")
    assert_clean_error(cli("predict", other, "x.jpg"), "cells")

    missing_std = tmp_path / "m3"
    shutil.copytree(model, missing_std)
    (missing_std / "standardiser.json").unlink()
    assert_clean_error(cli("predict", missing_std, "x.jpg"), "standardiser.json")


def test_bad_images_through_the_cli(cli, model, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert_clean_error(cli("predict", model, tmp_path / "bad.jpg"), "bad.jpg", "not a readable image")
    assert_clean_error(cli("predict", model, tmp_path / "gone.jpg"), "gone.jpg", "not found")


def test_existing_model_folder_needs_overwrite_or_resume(cli, model, work):
    args = ("train", _manifest(work), "--cells", work / "cells", "--embeddings", work / "emb", "-o", model)
    assert_clean_error(cli(*args), "--overwrite", "--resume")
    resumed = cli(*args, "--epochs", "5", "--batch-size", "32", "--lr", "0.01", "--device", "cpu", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert len((model / "train_log.jsonl").read_text().splitlines()) == 5


def test_finetune_aux_losses_reach_the_shared_features(model, work, tmp_path):
    # same data, seed and starting model: only the auxiliary losses differ, so the backbone differs only if their
    # gradients reach it through the shared embedding
    import torch

    from pigeon.data import read_manifest
    from pigeon.model import Geolocator, finetune

    df = read_manifest(_manifest(work))
    base = Geolocator.from_pretrained(model)
    runs = {aux: finetune(Geolocator.from_pretrained(model), df, tmp_path / f"aux_{aux}", epochs=1, lr=0.05,
                          batch_size=32, seed=0, aux=aux, device="cpu") for aux in (True, False)}
    assert not torch.allclose(runs[True].backbone.proj.weight, runs[False].backbone.proj.weight, atol=1e-6)
    assert not torch.equal(runs[True].head.climate.weight, base.head.climate.weight)  # aux heads trained too
    assert torch.equal(runs[False].head.climate.weight, base.head.climate.weight)
    image = df["image"].iloc[0]
    views = [str(work / "data" / v) for v in image]
    assert not np.allclose(runs[True].embed([views]), runs[False].embed([views]), atol=1e-5)
    assert runs[True].config["finetune"]["aux"] and not runs[False].config["finetune"]["aux"]
    log = tmp_path / "aux_True" / "finetune" / "finetune_log.jsonl"
    assert json.loads(log.read_text().splitlines()[0])["train_loss"] > 0


def test_finetune_updates_and_saves_the_last_block(work, tmp_path):
    from pigeon.data import read_manifest
    from pigeon.model import Geolocator, finetune

    geo = Geolocator.from_pretrained(work / "model")
    before = {k: v.clone() for k, v in geo.backbone.proj.state_dict().items()}
    conv_before = geo.backbone.conv.weight.clone()
    df = read_manifest(_manifest(work))
    tuned = finetune(geo, df, tmp_path / "ft", epochs=1, lr=0.05, batch_size=32)
    assert not np.allclose(tuned.backbone.proj.weight.numpy(), before["weight"].numpy())
    np.testing.assert_array_equal(tuned.backbone.conv.weight.numpy(), conv_before.numpy())  # frozen
    assert set(load_file(str(tmp_path / "ft" / "backbone.safetensors"))) == {"proj.weight", "proj.bias"}
    reloaded = Geolocator.from_pretrained(tmp_path / "ft")
    image = df["image"].iloc[0]
    path = [str(work / "data" / v) for v in image] if isinstance(image, list) else str(work / "data" / image)
    np.testing.assert_allclose(reloaded.predict([path])[0].probs, tuned.predict([path])[0].probs, rtol=1e-5)
    with pytest.raises(PigeonError, match="epochs"):
        finetune(geo, df, tmp_path / "ft2", epochs=0)


def test_refine_build_merges_options_over_the_preset(cli, model, work, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    result = cli("refine", "build", copy, "--manifest", _manifest(work), "--embeddings", work / "emb",
                 "--preset", "photo", "--top-k", "3")
    assert result.exit_code == 0, result.stderr
    assert "clusters" in result.stdout
    cfg = json.loads((copy / "refiner" / "meta.json").read_text())["config"]["refine"]
    assert (cfg["top_k"], cfg["temperature"], cfg["max_move_km"], cfg["min_samples"]) == (3, 0.6, None, 100)
    assert json.loads((copy / "config.json").read_text())["preset"] == "photo"
    images = cli("refine", "build", copy, "--manifest", _manifest(work), "--no-max-move")  # embeds the images
    assert images.exit_code == 0, images.stderr
    cfg = json.loads((copy / "refiner" / "meta.json").read_text())["config"]["refine"]
    assert (cfg["top_k"], cfg["max_move_km"]) == (5, None)


def test_refine_build_with_a_trained_index_reports_recall_and_maps_it(cli, model, work, tmp_path):
    from pigeon.model import Geolocator
    from pigeon.refine._index import is_memory_mapped

    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    args = ("refine", "build", copy, "--manifest", _manifest(work), "--embeddings", work / "emb", "--search", "index")
    result = cli(*args, "--index", "IVF4,Flat", "--nprobe", "2")
    assert result.exit_code == 0, result.stderr
    assert "gallery index: IVF4,Flat" in result.stdout and "recall@1" in result.stdout
    meta = json.loads((copy / "refiner" / "meta.json").read_text())
    assert meta["config"]["refine"]["index"] == "IVF4,Flat" and meta["config"]["refine"]["nprobe"] == 2
    assert 0 < meta["indexes"]["gallery"]["recall_at_1"] <= 1 and meta["indexes"]["gallery"]["nlist"] == 4
    refiner = Geolocator.from_pretrained(copy).refiner
    assert is_memory_mapped(refiner.index("gallery")) and is_memory_mapped(refiner.index("clusters"))
    # 8-bit PQ codes need 256 training rows per codebook: a clear error on this small gallery
    bad = cli(*args, "--index", "IVF2,PQ4")
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: cannot train the FAISS index 'IVF2,PQ4'")


def test_refine_build_bad_input(cli, model, work, tmp_path):
    from pigeon.embed import embed_manifest
    from pigeon.data import read_manifest

    assert_clean_error(cli("refine", "build", "demo", "--manifest", _manifest(work)), "read-only")
    assert_clean_error(cli("refine", "build", model, "--manifest", _manifest(work), "--temperature", "0"),
                       "temperature")
    assert_clean_error(cli("refine", "build", model, "--manifest", _manifest(work), "--top-k", "100000"), "top_k")
    df = read_manifest(_manifest(work))
    other = embed_manifest(df.head(20), "efficientnet:lite0", tmp_path / "other", num_workers=0)
    assert_clean_error(cli("refine", "build", model, "--manifest", _manifest(work), "--embeddings", other.root),
                       "efficientnet:lite0", "pigeontest:tiny")


def test_predict_methods_and_the_refined_column(cli, model, work, tmp_path):
    from pigeon.data import read_manifest
    from pigeon.evaluate import compute_metrics

    test = read_manifest(_manifest(work)).query("split == 'test'")
    tables = {}
    for name, extra in {"refine": (), "cell": ("--no-refine",), "knn": ("--method", "knn")}.items():
        out = tmp_path / f"{name}.csv"
        result = cli("predict", model, "--manifest", _manifest(work), "--split", "test", "-o", out,
                     "--embeddings", work / "emb", *extra)
        assert result.exit_code == 0, result.stderr
        assert f"method {name}" in result.stdout
        tables[name] = pd.read_csv(out, dtype={"id": str})
        assert compute_metrics(tables[name], test)["n"] == len(test)
    assert tables["refine"]["refined"].all() and not tables["cell"]["refined"].any()
    assert not np.allclose(tables["refine"]["lat"], tables["cell"]["lat"])
    assert_clean_error(cli("predict", model, "x.jpg", "--no-refine", "--method", "knn"), "--no-refine")


def test_batch_prediction_survives_bad_images(cli, model, work, tmp_path):
    from pigeon.data import read_manifest, write_manifest

    df = read_manifest(_manifest(work)).query("split == 'test'").head(6).copy()
    root = _manifest(work).parent
    (root / "truncated.jpg").write_bytes((root / df["image"].iat[0][0]).read_bytes()[:200])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("hello")
    df["image"] = [["truncated.jpg", "empty.jpg"], ["text.jpg"], [df["image"].iat[2][0], "empty.jpg"],
                   *df["image"].iloc[3:]]
    write_manifest(df, root / "bad_manifest.parquet")
    out = tmp_path / "pred.csv"
    result = cli("predict", model, "--manifest", root / "bad_manifest.parquet", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "predicted 4 of 6" in result.stdout and "4 unreadable image(s)" in result.stdout
    failures = pd.read_csv(tmp_path / "pred.failures.csv", dtype={"id": str})
    assert sorted(failures["image"].map(lambda p: p.rsplit("/", 1)[-1])) == sorted(
        ["truncated.jpg", "empty.jpg", "text.jpg", "empty.jpg"])
    assert set(pd.read_csv(out, dtype={"id": str})["id"]) == set(df["id"].iloc[2:])
    assert failures["error"].str.len().min() > 10
    strict = cli("predict", model, "--manifest", root / "bad_manifest.parquet", "-o", tmp_path / "s.csv", "--strict")
    last = strict.stderr.strip().splitlines()[-1]  # after the progress bar of the work done so far
    assert strict.exit_code == 2 and last.startswith("error:") and "truncated.jpg" in last
    assert "Traceback" not in strict.stderr and not (tmp_path / "s.csv").exists()


def test_train_records_the_preset_and_every_resolved_value(cli, work, tmp_path):
    args = ("train", _manifest(work), "--cells", work / "cells", "--embeddings", work / "emb", "--epochs", "2",
            "--device", "cpu", "--preset", "photo")
    assert_clean_error(cli(*args, "-o", tmp_path / "a"), "top 40 cells", "--no-refine")
    assert not (tmp_path / "a").exists()  # refused before any training
    result = cli(*args, "-o", tmp_path / "b", "--tau", "70", "--no-refine")
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["preset"] == "photo" and config["stages"] == ["head"] and config["methods"] == ["cell"]
    by_name = cli(*args, "-o", tmp_path / "c", "--methods", "cell")  # --no-refine is its alias
    assert by_name.exit_code == 0 and "methods: cell ->" in by_name.stdout, by_name.stderr
    assert json.loads((tmp_path / "c" / "config.json").read_text())["stages"] == ["head"]
    assert (config["train"]["tau_km"], config["train"]["views"], config["train"]["epochs"]) == (70.0, "first", 2)
