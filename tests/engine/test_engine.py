"""The training engine: samplers, schedule, accumulation, clipping, precision, checkpoints that survive a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pigeon.engine import (
    Engine, LocationBatchSampler, OptimConfig, ShuffleSampler, autocast_dtype, lr_factor, read_checkpoint_state,
)
from pigeon.errors import InputError
from tests.support.engine import Regression, regression_data


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------- samplers
def test_location_sampler_never_repeats_a_location_also_over_two_ranks():
    rng = np.random.default_rng(0)
    for case in range(150):
        n_groups = int(rng.integers(2, 60))
        groups = np.repeat(rng.permutation(n_groups * 3)[:n_groups], rng.integers(1, 6, n_groups))  # 1-5 views
        groups = rng.permutation(groups)
        world = int(rng.integers(1, 3))
        batch = int(rng.integers(1, n_groups // world + 1))
        seen = []
        shards = [LocationBatchSampler(groups, batch, seed=case, rank=r, world_size=world) for r in range(world)]
        for epoch in (0, 1):
            for s in shards:
                s.set_epoch(epoch)
            per_rank = [list(s) for s in shards]
            assert len({len(b) for b in per_rank}) == 1 and all(len(b) == len(shards[0]) for b in per_rank)
            for step in zip(*per_rank):  # one global batch: every rank's part together
                both = np.concatenate(step)
                assert all(len(b) == batch for b in step)
                assert len(set(groups[both])) == len(both), (case, groups[both])
            flat = np.concatenate([np.concatenate(b) for b in per_rank if b])
            assert len(set(flat)) == len(flat)  # each view at most once an epoch
            # what is dropped is less than one global batch per round
            assert len(groups) - len(flat) < batch * world * np.bincount(np.unique(groups, return_inverse=True)[1]).max()
            seen.append(flat)
        if len(seen[0]) > 2:
            assert not np.array_equal(seen[0], seen[1])  # reshuffled every epoch


def test_location_sampler_is_seeded_and_refuses_too_large_batches():
    groups = np.repeat(np.arange(10), 4)
    a, b = LocationBatchSampler(groups, 5, seed=1), LocationBatchSampler(groups, 5, seed=1)
    assert [x.tolist() for x in a] == [x.tolist() for x in b] and len(a) == 8
    with pytest.raises(InputError, match="batch size 11 is larger than the 10 distinct locations"):
        LocationBatchSampler(groups, 11)
    with pytest.raises(InputError, match="6 x 2 processes"):
        LocationBatchSampler(groups, 6, world_size=2)


def test_shuffle_sampler_shares_every_row_once_between_ranks():
    shards = [ShuffleSampler(23, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    rows = np.concatenate([np.concatenate(list(s)) for s in shards])
    assert sorted(rows) == list(range(23)) and len(shards[0]) == len(shards[1]) == 3
    # a last global batch of 1 row is filled up with the epoch's first row, so that no rank gets an empty batch
    shards = [ShuffleSampler(17, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    parts = [list(s) for s in shards]
    assert [len(b) for b in parts[0]] == [4, 4, 1] and [len(b) for b in parts[1]] == [4, 4, 1]
    assert sorted(np.concatenate(parts[0] + parts[1])) == sorted(list(range(17)) + [parts[0][0][0]])


# ------------------------------------------------------------------------------------------- schedule
def test_warmup_then_linear_and_cosine():
    assert [lr_factor(s, 10, 2, "linear") for s in range(4)] == [0.5, 1.0, 1.0, 0.875]
    assert lr_factor(9, 10, 2, "linear") == pytest.approx(0.125)
    assert lr_factor(2, 10, 2, "cosine") == 1.0 and lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(5, 10, 0, "constant") == 1.0


# ------------------------------------------------------------------------------------------- a toy task
def _fit(config: OptimConfig, out_dir=None, model=None, batch_size=8, collate=None, **kw):
    data = regression_data()
    model = model or Regression()
    collate = collate or (lambda idx: {k: v[torch.as_tensor(idx)] for k, v in data.items()})
    result = Engine(config, out_dir).fit(model, ShuffleSampler(64, batch_size, seed=config.seed), collate, **kw)
    return model, result


def test_engine_learns_and_logs(tmp_path):
    model, result = _fit(OptimConfig(epochs=30, lr=0.1, device="cpu"), tmp_path)
    assert result.history[-1]["train_loss"] < 0.01 * result.history[0]["train_loss"]
    assert {"train_loss", "train_mae", "lr", "seconds"} <= set(result.history[0])
    lines = (tmp_path / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 31))
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_gradient_accumulation_equals_the_bigger_batch():
    cfg = dict(epochs=3, lr=0.05, device="cpu", warmup_epochs=1.0)
    big, r_big = _fit(OptimConfig(**cfg), batch_size=16)
    small, r_small = _fit(OptimConfig(**cfg, grad_accum=2), batch_size=8)
    torch.testing.assert_close(big.linear.weight, small.linear.weight, atol=1e-6, rtol=1e-5)
    assert [r["lr"] for r in r_big.history] == pytest.approx([r["lr"] for r in r_small.history])


def test_gradient_clipping_bounds_each_step():
    # with eps large, an AdamW step is ~ lr * grad / eps: clipping the gradient norm to 1e-3 makes it tiny
    cfg = dict(epochs=1, lr=1.0, eps=1e3, weight_decay=0.0, device="cpu")
    free, _ = _fit(OptimConfig(**cfg))
    clipped, _ = _fit(OptimConfig(**cfg, clip_norm=1e-3))
    start = Regression().linear.weight
    moved_free = (free.linear.weight - start).norm()
    moved_clipped = (clipped.linear.weight - start).norm()
    assert moved_clipped < 0.01 * moved_free and moved_clipped > 0


def test_mixed_precision_resolution_and_bf16_training():
    assert autocast_dtype(torch.device("cpu")) is None  # float32 on a CPU unless asked
    assert autocast_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
    with pytest.raises(InputError, match="precision"):
        autocast_dtype(torch.device("cpu"), "fp8")
    _, result = _fit(OptimConfig(epochs=10, lr=0.1, device="cpu", precision="bf16"))
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]  # bf16 matmuls still learn


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [11, 13])  # inside epoch 2 (8 batches an epoch), right after a checkpoint or not
def test_resume_after_a_kill_inside_an_epoch_equals_an_uninterrupted_run(tmp_path, kill_at):
    cfg = OptimConfig(epochs=3, lr=0.05, device="cpu", checkpoint_every=2, seed=4)
    straight, r_straight = _fit(cfg, tmp_path / "a", model=Regression(dropout=0.3))
    data, calls = regression_data(), [0]

    def dying(idx):
        calls[0] += 1
        if calls[0] == kill_at:
            raise _Killed
        return {k: v[torch.as_tensor(idx)] for k, v in data.items()}

    with pytest.raises(_Killed):
        _fit(cfg, tmp_path / "b", model=Regression(dropout=0.3), collate=dying)
    state = read_checkpoint_state(tmp_path / "b")
    assert state["epoch"] == 1 and 0 < state["batches_done"] < 8  # the checkpoint is inside epoch 2
    resumed, r_resumed = _fit(cfg, tmp_path / "b", model=Regression(dropout=0.3), resume=True)
    torch.testing.assert_close(resumed.linear.weight, straight.linear.weight, rtol=0, atol=1e-6)
    assert [r["train_loss"] for r in r_resumed.history] == pytest.approx([r["train_loss"] for r in r_straight.history])
    # other settings are refused
    with pytest.raises(InputError, match="other data or settings"):
        _fit(OptimConfig(epochs=3, lr=0.01, device="cpu", checkpoint_every=2, seed=4), tmp_path / "b", resume=True)


def test_select_keeps_the_best_epoch_and_patience_stops(tmp_path):
    scores = iter([5.0, 3.0, 4.0, 4.5, 6.0, 7.0])
    model, result = _fit(OptimConfig(epochs=6, lr=0.1, device="cpu", patience=2), tmp_path,
                         evaluate=lambda m: {"val": next(scores), "w0": float(m.linear.weight[0, 0].detach())},
                         select=lambda r: r["val"])
    assert result.stopped_early and len(result.history) == 4 and result.best["epoch"] == 2
    assert float(model.linear.weight[0, 0].detach()) == pytest.approx(result.best["w0"])  # the best epoch's weights


def test_nothing_to_train_and_bad_settings_are_clear_errors():
    frozen = Regression().requires_grad_(False)
    with pytest.raises(InputError, match="nothing to train"):
        _fit(OptimConfig(device="cpu"), model=frozen)
    for bad, match in [({"grad_accum": 0}, "grad_accum"), ({"schedule": "step"}, "schedule"),
                       ({"clip_norm": 0.0}, "clip_norm")]:
        with pytest.raises(InputError, match=match):
            OptimConfig(**bad).validate()
