"""The engine under torchrun: 2 gloo processes train the model 1 process trains (DDP, accumulation with no_sync,
reduced statistics, one validation decision, rank-0 files, resume), and the samplers keep their rules across ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pigeon.engine import Engine, LocationBatchSampler, OptimConfig, ShuffleSampler
from pigeon.errors import InputError
from tests.support.distributed import spawn
from tests.support.engine import Regression, regression_data

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG = dict(epochs=3, lr=0.05, device="cpu", grad_accum=2, seed=3, checkpoint_every=1)


class _Killed(Exception):
    pass


def _run(out, dropout: float, kill_at: int | None = None, resume: bool = False, select: bool = True):
    """The toy regression on 64 rows, global batches of 16 (8 a process with 2), 2 micro-batches a step; the
    validation metric differs between processes, so only a shared decision keeps them in step."""
    data, calls = regression_data(), [0]

    def collate(idx):
        calls[0] += 1
        if calls[0] == kill_at:
            raise _Killed
        return {k: v[torch.as_tensor(idx)] for k, v in data.items()}

    engine = Engine(OptimConfig(**CONFIG), out)
    model = Regression(dropout=dropout)
    sampler = ShuffleSampler(64, engine.per_rank(16), seed=3, rank=engine.rank, world_size=engine.world_size)
    scores = iter([3.0, 1.0, 2.0] if engine.rank == 0 else [1.0, 2.0, 3.0])
    result = engine.fit(model, sampler, collate, evaluate=lambda m: {"val": next(scores), "rank": engine.rank},
                        select=(lambda r: r["val"]) if select else None, resume=resume)
    return model.linear.weight.detach().numpy().copy(), result


def _worker(rank: int, root) -> None:
    straight, r_straight = _run(root / "a", dropout=0.0)
    np.save(root / f"weights{rank}.npy", straight)
    (root / f"history{rank}.json").write_text(json.dumps(r_straight.history))
    noisy, r_noisy = _run(root / "b", dropout=0.3, select=False)
    with pytest.raises(_Killed):  # killed inside epoch 2 (4 micro-batches an epoch), after a mid-epoch checkpoint
        _run(root / "c", dropout=0.3, kill_at=7, select=False)
    resumed, r_resumed = _run(root / "c", dropout=0.3, resume=True, select=False)
    np.testing.assert_allclose(resumed, noisy, rtol=0, atol=1e-6)
    assert [r["train_loss"] for r in r_resumed.history] == pytest.approx([r["train_loss"] for r in r_noisy.history])


def test_two_processes_train_what_one_process_trains(tmp_path):
    spawn(_worker, 2, tmp_path)
    single, r_single = _run(tmp_path / "single", dropout=0.0)  # this process alone: world size 1
    weights = [np.load(tmp_path / f"weights{r}.npy") for r in (0, 1)]
    np.testing.assert_array_equal(weights[0], weights[1])  # DDP kept the processes in step
    np.testing.assert_allclose(weights[0], single, rtol=0, atol=1e-6)  # and they trained the single-process model
    histories = [[{k: v for k, v in h.items() if "seconds" not in k} for h in
                  json.loads((tmp_path / f"history{r}.json").read_text())] for r in (0, 1)]
    assert histories[0] == histories[1]  # rank 0's validation decided for both: same records, same best epoch
    assert [h["rank"] for h in histories[1]] == [0, 0, 0]
    assert [h["train_loss"] for h in histories[0]] == pytest.approx([h["train_loss"] for h in r_single.history])
    assert [h["val"] for h in histories[0]] == [3.0, 1.0, 2.0]
    log = (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2, 3]  # written once, by rank 0
    with pytest.raises(InputError, match="written by 2 process"):  # a resume must use as many processes
        _run(tmp_path / "a", dropout=0.0, resume=True)


def _sampler_worker(rank: int, root) -> None:
    """Each process draws its share of every contrastive batch; gathered, a global batch has distinct locations."""
    groups = np.repeat(np.arange(30), np.arange(30) % 4 + 1)  # 30 locations with 1 to 4 views
    engine = Engine(OptimConfig(device="cpu"))
    sampler = LocationBatchSampler(groups, engine.per_rank(8), seed=5, rank=engine.rank,
                                   world_size=engine.world_size)
    steps = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        for idx in sampler:
            parts = [None, None]
            torch.distributed.all_gather_object(parts, idx.tolist())
            steps.append(parts)
    (root / f"steps{rank}.json").write_text(json.dumps(steps))
    with pytest.raises(InputError, match="split evenly between 2 processes"):
        engine.per_rank(7)


def test_location_rule_holds_for_the_global_batch_of_two_processes(tmp_path):
    spawn(_sampler_worker, 2, tmp_path)
    groups = np.repeat(np.arange(30), np.arange(30) % 4 + 1)
    steps = json.loads((tmp_path / "steps0.json").read_text())
    assert steps == json.loads((tmp_path / "steps1.json").read_text()) and len(steps) > 4
    single = LocationBatchSampler(groups, 8, seed=5)
    expected = []
    for epoch in (0, 1):
        single.set_epoch(epoch)
        expected += [b.tolist() for b in single]
    for (mine, theirs), batch in zip(steps, expected):
        both = mine + theirs
        assert len(mine) == len(theirs) == 4 and len(set(groups[both])) == 8  # no location twice
        assert both == batch  # the global batches are the single-process ones
