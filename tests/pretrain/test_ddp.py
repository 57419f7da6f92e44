"""Contrastive pretraining under torchrun: the embeddings are gathered over processes (negatives span the whole
batch, gradients flow back to each process), so 2 gloo processes pretrain the towers 1 process pretrains."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import pigeon.backbones  # noqa: F401  (before the fixtures import transformers: see pigeon._compat)
from pigeon.data import write_manifest
from tests.support import invoke
from tests.support.distributed import torchrun

pytestmark = pytest.mark.usefixtures("one_thread")


def _args(manifest, clip, out):
    # 8 images a contrastive batch (4 a process), 2 batches a step (accumulated under no_sync)
    return ("pretrain", manifest, "--backbone", f"clip:{clip}", "-o", out, "--epochs", "2", "--batch-size", "8",
            "--grad-accum", "2", "--lr", "1e-3", "--head-lr", "1e-2", "--warmup", "0", "--layers", "all",
            "--device", "cpu")


def test_torchrun_pretraining_equals_one_process(captioned, tiny_clip_full, tmp_path):
    manifest = tmp_path / "captioned.parquet"
    write_manifest(captioned, manifest)
    single = invoke(*_args(manifest, tiny_clip_full, tmp_path / "one"))
    assert single.exit_code == 0, single.stderr
    run = torchrun(2, *_args(manifest, tiny_clip_full, tmp_path / "two"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("pretrained clip:") == 1  # printed by rank 0 only
    files = sorted(p.name for p in (tmp_path / "one").glob("*.safetensors"))
    assert files and files == sorted(p.name for p in (tmp_path / "two").glob("*.safetensors"))
    for name in files:
        one, two = load_file(str(tmp_path / "one" / name)), load_file(str(tmp_path / "two" / name))
        assert set(one) == set(two)
        for key in one:
            torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-4)
    logs = [[json.loads(line) for line in (tmp_path / run / "pretrain_log.jsonl").read_text().splitlines()]
            for run in ("one", "two")]
    for key in ("train_contrastive_loss", "train_retrieval_acc", "train_aux_loss"):  # the whole batch's loss
        assert [r[key] for r in logs[1]] == pytest.approx([r[key] for r in logs[0]], rel=1e-4), key
