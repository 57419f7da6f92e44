"""Head training and fine-tuning under torchrun: 2 gloo processes reach the model 1 process reaches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.support import invoke
from tests.support.distributed import spawn, torchrun
from tests.support.model import embedded_images, synthetic_store

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """480 synthetic locations (384 train, 96 val) with auxiliary columns, their store and naive cells."""
    root = tmp_path_factory.mktemp("ddp")
    synthetic_store(root)
    return root


def _train_args(root, out, *extra):
    # full batches (384 rows: 192 a process) make the steps of 1 and 2 processes the same
    return ("train", root / "manifest.parquet", "--cells", root / "cells", "--embeddings", root / "emb", "-o", out,
            "--epochs", "4", "--batch-size", "384", "--lr", "0.05", "--dropout", "0", "--device", "cpu", *extra)


def test_torchrun_head_training_equals_one_process(dataset, tmp_path):
    single = invoke(*_train_args(dataset, tmp_path / "one"))
    assert single.exit_code == 0, single.stderr
    run = torchrun(2, *_train_args(dataset, tmp_path / "two"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("trained geocell") == 1  # printed by rank 0 only
    one, two = (load_file(str(tmp_path / name / "head.safetensors")) for name in ("one", "two"))
    assert set(one) == set(two) and {"climate.weight", "regression.weight"} <= set(one)
    for key in one:  # each process read its half; gradients and embedding statistics were combined
        torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-4)
    logs = [[json.loads(line) for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
            for name in ("one", "two")]
    assert [r["val_median_km"] for r in logs[1]] == pytest.approx([r["val_median_km"] for r in logs[0]], rel=1e-6)
    assert [r["train_loss"] for r in logs[1]] == pytest.approx([r["train_loss"] for r in logs[0]], rel=1e-5)
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two")]
    assert metrics[0]["best_epoch"] == metrics[1]["best_epoch"]
    assert metrics[1]["best"]["val_acc"] > 0.3  # 24 cells: it learned (chance is about 0.04)
    refiner = json.loads((tmp_path / "two" / "refiner" / "meta.json").read_text())["config"]
    assert refiner["n_gallery"] == 384  # rank 0 built the refiner over every training row
    # a resume must use as many processes as the checkpoint's run
    again = invoke(*_train_args(dataset, tmp_path / "two"), "--resume")
    assert again.exit_code == 2 and "torchrun --nproc-per-node 2" in again.stderr


def _finetune_worker(rank: int, model, manifest, out) -> None:
    from pigeon.data import read_manifest
    from pigeon.model import Geolocator, finetune

    finetune(Geolocator.from_pretrained(model), read_manifest(manifest), out, epochs=2, lr=0.05, batch_size=16,
             seed=0, device="cpu", grad_accum=2)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """48 training locations x 2 views with the tiny test backbone's store and a model trained on them."""
    from pigeon.data.bluemarble import make_bluemarble_dataset

    root = tmp_path_factory.mktemp("ddp_ft")
    df = make_bluemarble_dataset(root / "data", n=64, views=2, seed=1, size_px=24)
    df["split"] = np.where(np.arange(len(df)) < 48, "train", "val")
    df["koppen"] = np.where(df["lat"].abs() < 23, "Aw", "Cfb")
    embedded_images(root, df, min_size=4, max_size=8)
    result = invoke("train", root / "data" / "manifest.parquet", "--cells", root / "cells", "--embeddings",
                    root / "emb", "-o", root / "model", "--epochs", "2", "--batch-size", "16", "--dropout", "0",
                    "--device", "cpu")  # no dropout: each process would draw its own masks
    assert result.exit_code == 0, result.stderr
    return root


def test_two_process_finetuning_equals_one_process(images, tmp_path):
    manifest = images / "data" / "manifest.parquet"
    spawn(_finetune_worker, 2, images / "model", manifest, tmp_path / "two")
    _finetune_worker(0, images / "model", manifest, tmp_path / "one")
    for name in ("backbone.safetensors", "head.safetensors"):
        one, two = (load_file(str(tmp_path / run / name)) for run in ("one", "two"))
        assert set(one) == set(two)
        for key in one:  # 16 locations a step (8 a process, 2 micro-batches of 4 under no_sync)
            torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-4)
    log = (tmp_path / "two" / "finetune" / "finetune_log.jsonl").read_text().splitlines()
    assert len(log) == 2 and (tmp_path / "two" / "refiner" / "meta.json").is_file()
