"""The training engine: one loop for head training, fine-tuning and pretraining.

The model given to :meth:`Engine.fit` computes its own loss: ``model(batch) -> (loss, stats, n)``, with ``stats`` a
dict of floats (or 0-d tensors) averaged over the epoch weighted by ``n``, the batch's sample count. Going through
``forward`` keeps the model wrappable by ``DistributedDataParallel`` (see :meth:`Engine.wrap`). What differs between
tasks stays outside the engine: the sampler (which indices form a batch), ``collate`` (indices -> tensors),
``evaluate`` (validation metrics after each epoch) and ``select`` (which epoch is best).

Files (rank 0 only) in ``out_dir``: ``checkpoint/last.safetensors`` (trainable weights, buffers, AdamW state, RNG
state and, in its metadata, the loop's state as JSON: one atomic file, so a kill at any moment leaves a consistent
checkpoint), ``checkpoint/best.safetensors``, the log (one JSON line per epoch) and ``curves.png``.

Under ``torchrun --nproc-per-node N`` (see :func:`pigeon._device.init_distributed`) every process runs the same
loop on its share of each batch: the model is wrapped in ``DistributedDataParallel`` (gradients averaged over the
processes, not synchronised on the micro-batches of an accumulation group), the epoch's statistics are summed over
processes, rank 0's validation metrics decide for everyone, and only rank 0 writes, with a barrier after each write.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from pigeon._device import (
    all_gather_object, all_reduce_sum, autocast_dtype, barrier, broadcast_object, distributed_info, init_distributed,
    resolve_device,
)
from pigeon._io import atomic_path
from pigeon._progress import progress
from pigeon.engine._config import OptimConfig, lr_factor
from pigeon.engine._curves import Panel, plot_curves
from pigeon.errors import InputError

CHECKPOINT_DIR = "checkpoint"
LAST = "last.safetensors"
BEST = "best.safetensors"
CURVES = "curves.png"


class Sampler(Protocol):
    """What :meth:`Engine.fit` iterates: index batches of one epoch on this rank."""

    def set_epoch(self, epoch: int) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self): ...


@dataclass
class TrainResult:
    """What :meth:`Engine.fit` returns.

    Attributes:
        history: one record per epoch: ``train_*`` means, ``lr``, ``seconds`` (training steps only),
            the ``evaluate`` metrics and ``val_seconds``.
        best: the record of the selected epoch (the last one without ``select``).
        stopped_early: whether ``patience`` ended the run.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False


@dataclass
class _Run:
    """What one :meth:`Engine.fit` call carries from phase to phase."""

    model: nn.Module
    wrapped: nn.Module  # the model as trained: DistributedDataParallel under torchrun
    opt: torch.optim.Optimizer
    scaler: Any
    params: list[torch.Tensor]
    keys: list[str]
    fingerprint: dict[str, Any]
    n_batches: int
    total: int  # optimiser steps of the whole run
    warmup: int
    state: dict[str, Any] = field(default_factory=lambda: {
        "epoch": 0, "batches_done": 0, "step": 0, "best_key": None, "best_epoch": None, "bad_epochs": 0,
        "history": [], "sums": {}, "stopped_early": False})
    rng_state: dict[str, torch.Tensor] | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    bar: Any = None
    task: Any = None


class Engine:
    """Runs AdamW with warm-up and a schedule over a sampler, with accumulation, clipping, mixed precision,
    checkpoints that survive a kill, a JSONL log, curves and early stopping.

    Args:
        config: the :class:`OptimConfig`.
        out_dir: folder for the checkpoint, log and curves (None: nothing is written, no resume).
        log_name: file name of the per-epoch log.
        description: label of the progress bar.
        panels: what ``curves.png`` shows (default: every logged series).
        callbacks: called with each epoch's record after its checkpoint is written.
    """

    def __init__(self, config: OptimConfig, out_dir: str | os.PathLike | None = None, *,
                 log_name: str = "train_log.jsonl", description: str = "training",
                 panels: Sequence[Panel] | None = None,
                 callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> None:
        self.config = config.validate()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.log_name, self.description, self.panels, self.callbacks = log_name, description, panels, callbacks
        self.device = init_distributed(resolve_device(config.device))
        self.rank, self.world_size = distributed_info()
        self.amp_dtype = autocast_dtype(self.device, config.precision)

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    def per_rank(self, batch_size: int) -> int:
        """This process's share of a global batch of ``batch_size`` samples (split evenly between processes), so that
        the same settings train the same model whatever the number of processes."""
        if batch_size % self.world_size:
            low = batch_size - batch_size % self.world_size
            raise InputError(f"a batch of {batch_size} cannot be split evenly between {self.world_size} processes; "
                             f"use a multiple of {self.world_size} (e.g. --batch-size {low or self.world_size})")
        return batch_size // self.world_size

    def wrap(self, model: nn.Module) -> nn.Module:
        """The one place where a model is wrapped for multi-process training: ``DistributedDataParallel``.

        Unused parameters are looked for on every step: an auxiliary head without a known label in a micro-batch
        gets no gradient on that process.
        """
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    # ------------------------------------------------------------------ the loop
    def fit(self, model: nn.Module, sampler: Sampler, collate: Callable[[Any], Any], *,
            param_groups: Iterable[dict[str, Any]] | None = None,
            evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
            select: Callable[[dict[str, Any]], Any] | None = None,
            fingerprint: dict[str, Any] | None = None, resume: bool = False) -> TrainResult:
        """Train ``model`` in place; on return it holds the selected epoch's weights, in eval mode.

        Args:
            model: ``model(batch) -> (loss, stats, n)``; moved to the engine's device.
            sampler: yields each epoch's index batches of this process (see :class:`pigeon.engine.ShuffleSampler`);
                every process must get the same number of batches.
            collate: index batch -> the batch ``model`` takes (tensors on the engine's device).
            param_groups: AdamW groups (``params`` plus optional ``lr``, ``weight_decay``); default every trainable
                parameter of ``model`` in one group.
            evaluate: ``evaluate(model) -> metrics`` after each epoch (eval mode, no gradients). It runs on every
                process (it may share the work out and gather it); rank 0's metrics are used by all.
            select: key of a record, lower is better, choosing the epoch kept and driving ``patience``;
                None keeps the last epoch.
            fingerprint: what must match for a resume (data sizes, task settings), besides the config.
            resume: continue from ``out_dir``'s checkpoint (also one written mid-epoch or before a kill).
        """
        run = self._start(model, sampler, param_groups, fingerprint, resume)
        cfg = self.config
        bar = progress() if self.is_main else contextlib.nullcontext()
        with bar:
            run.bar = bar
            run.task = bar.add_task(self.description, total=(cfg.epochs - run.state["epoch"]) * run.n_batches,
                                    completed=run.state["batches_done"], info="") if self.is_main else None
            for epoch in range(run.state["epoch"], cfg.epochs):
                if cfg.patience is not None and run.state["bad_epochs"] >= cfg.patience:
                    run.state["stopped_early"] = True
                    break
                record = self._train_epoch(run, epoch, sampler, collate)
                self._end_epoch(run, record, evaluate, select)
        return self._finish(run, select)

    def _start(self, model: nn.Module, sampler: Sampler, param_groups: Iterable[dict[str, Any]] | None,
               fingerprint: dict[str, Any] | None, resume: bool) -> _Run:
        """Set-up: the optimiser and scaler, the schedule's length, the fingerprint, and the state (restored)."""
        cfg = self.config
        model.to(self.device)
        groups = list(param_groups) if param_groups is not None else [
            {"params": [p for p in model.parameters() if p.requires_grad]}]
        for g in groups:
            g.setdefault("lr", cfg.lr)
            g["initial_lr"] = g["lr"]
        params = [p for g in groups for p in g["params"]]
        if not params:
            raise InputError("nothing to train: the model has no trainable parameters")
        opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        keys = _saved_keys(model)
        fingerprint = {"config": cfg.to_dict(), "batches": len(sampler), **(fingerprint or {})}
        if self.world_size > 1:
            fingerprint["world_size"] = self.world_size
        fingerprint = json.loads(json.dumps(fingerprint, default=str))
        n_batches = len(sampler)
        if n_batches == 0:
            raise InputError("the sampler gives no batch; use a smaller batch size or more data")
        steps_per_epoch = -(-n_batches // cfg.grad_accum)
        run = _Run(model=model, wrapped=model, opt=opt, scaler=scaler, params=params, keys=keys,
                   fingerprint=fingerprint, n_batches=n_batches, total=cfg.epochs * steps_per_epoch,
                   warmup=round(cfg.warmup_epochs * steps_per_epoch))
        if resume:
            run.state, run.rng_state = self._restore(model, opt, scaler, keys, fingerprint)
        run.wrapped = self.wrap(model)
        return run

    def _train_epoch(self, run: _Run, epoch: int, sampler: Sampler, collate: Callable[[Any], Any]) -> dict[str, Any]:
        """One epoch of steps (from where a resumed run stopped); its record: ``epoch``, ``lr``, ``train_*`` means
        over every process, ``seconds``."""
        cfg, state = self.config, run.state
        run.model.train()
        _seed(cfg.seed, epoch, self.device, self.rank)
        if run.rng_state is not None:  # resuming inside this epoch: continue its random stream
            _set_rng(run.rng_state, self.device)
            run.rng_state = None
        sampler.set_epoch(epoch)
        sums = state["sums"] or {"n": 0}
        skip, lr = state["batches_done"], run.opt.param_groups[0]["lr"]
        t0 = time.perf_counter()
        for i, idx in enumerate(sampler):
            if i < skip:
                continue
            start = i - i % cfg.grad_accum
            group_len = min(cfg.grad_accum, run.n_batches - start)
            last = i == start + group_len - 1
            # gradients are averaged over processes once per optimiser step, not per micro-batch
            sync = run.wrapped.no_sync() if self.world_size > 1 and not last else contextlib.nullcontext()
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    loss, stats, n = run.wrapped(collate(idx))
                run.scaler.scale(loss.float() / group_len).backward()
            _accumulate(sums, {"loss": loss, **stats}, n)
            if last:
                lr = self._step(run.opt, run.scaler, run.params, state["step"], run.total, run.warmup)
                state["step"] += 1
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and i < run.n_batches - 1:
                    state.update(batches_done=i + 1, sums=self._reduce(sums))
                    self._save(run.model, run.opt, run.scaler, run.keys, state, run.fingerprint, rng=True)
            if run.task is not None:
                run.bar.update(run.task, advance=1, info=f"epoch {epoch + 1}/{cfg.epochs}  "
                                                         f"loss {sums['loss'] / max(sums['n'], 1):.4f}")
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        sums = self._reduce(sums)
        record.update({f"train_{k}": v / max(sums["n"], 1) for k, v in sums.items() if k != "n"})
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return record

    def _end_epoch(self, run: _Run, record: dict[str, Any], evaluate: Callable[[nn.Module], dict[str, float]] | None,
                   select: Callable[[dict[str, Any]], Any] | None) -> None:
        """End of an epoch: validation, the choice of the best epoch, the checkpoint, the log and the callbacks."""
        state, model = run.state, run.model
        if evaluate is not None:
            t1 = time.perf_counter()
            model.eval()
            with torch.no_grad():
                metrics = evaluate(model)
            record.update(broadcast_object(metrics))  # one decision for every process
            record["val_seconds"] = round(time.perf_counter() - t1, 3)
        history = state["history"]
        history.append(record)
        key = _as_key(select(record)) if select is not None else None
        improved = select is None or state["best_key"] is None or key < state["best_key"]
        state.update(epoch=record["epoch"], batches_done=0, sums={}, history=history,
                     bad_epochs=0 if improved else state["bad_epochs"] + 1)
        if improved:
            state.update(best_key=key, best_epoch=record["epoch"])
            run.best_weights = _weights(model, run.keys) if select is not None else None
        self._save(model, run.opt, run.scaler, run.keys, state, run.fingerprint,
                   best=run.best_weights if improved else None)
        self._write_log(history)
        for callback in self.callbacks:
            callback(record)

    def _finish(self, run: _Run, select: Callable[[dict[str, Any]], Any] | None) -> TrainResult:
        """The selected epoch's weights back in the model (eval mode), the curves, the result."""
        model, state = run.model, run.state
        if select is not None:
            best_weights = run.best_weights
            if best_weights is None and self._ckpt(BEST).is_file():
                best_weights = load_file(str(self._ckpt(BEST)))
            if best_weights is not None:
                model.load_state_dict(best_weights, strict=False)
        model.eval()
        history = state["history"]
        best = next(r for r in history if r["epoch"] == state["best_epoch"])
        if self.out_dir is not None and self.is_main:
            plot_curves(history, self.out_dir / CURVES, self.panels, mark_epoch=state["best_epoch"])
        return TrainResult(history, best, state["stopped_early"])

    def _step(self, opt, scaler, params, step: int, total: int, warmup: int) -> float:
        factor = lr_factor(step, total, warmup, self.config.schedule)
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * factor
        if self.config.clip_norm is not None:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.config.clip_norm)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return opt.param_groups[0]["lr"]

    def _reduce(self, sums: dict[str, float]) -> dict[str, float]:
        """The epoch's sums over every process (unchanged in a single process)."""
        if self.world_size == 1:
            return dict(sums)
        names = sorted(sums)
        return dict(zip(names, all_reduce_sum(np.array([sums[k] for k in names])).tolist()))

    # ------------------------------------------------------------- files
    def _ckpt(self, name: str) -> Path:
        return self.out_dir / CHECKPOINT_DIR / name

    def _save(self, model, opt, scaler, keys, state, fingerprint, best=None, rng: bool = False) -> None:
        """Rank 0 writes the checkpoint (with every process's RNG state when ``rng``); the others wait for it."""
        if self.out_dir is None:
            return
        rngs = all_gather_object(_get_rng(self.device)) if rng else []
        if self.is_main:
            tensors = {f"model.{k}": v for k, v in _weights(model, keys).items()}
            opt_sd = opt.state_dict()
            tensors.update({f"opt.{pid}.{k}": v.detach().cpu().contiguous()
                            for pid, s in opt_sd["state"].items() for k, v in s.items()})
            for r, states in enumerate(rngs):
                tensors.update({f"{_rng_prefix(r)}{k}": v for k, v in states.items()})
            meta = {**state, "fingerprint": fingerprint, "param_groups": opt_sd["param_groups"],
                    "scaler": scaler.state_dict()}
            if best is not None:
                with atomic_path(self._ckpt(BEST)) as tmp:
                    save_file(best, str(tmp))
            with atomic_path(self._ckpt(LAST)) as tmp:
                save_file(tensors, str(tmp), metadata={"state": json.dumps(meta, default=float)})
        barrier()

    def _restore(self, model, opt, scaler, keys, fingerprint) -> tuple[dict[str, Any], dict | None]:
        if self.out_dir is None:
            raise InputError("resume needs an output folder holding a checkpoint")
        path = self._ckpt(LAST)
        meta = read_checkpoint_state(self.out_dir)
        written_by = meta["fingerprint"].get("world_size", 1)
        if written_by != self.world_size:
            raise InputError(f"the checkpoint in {path.parent} was written by {written_by} process(es) and this run "
                             f"has {self.world_size}; resume with 'torchrun --nproc-per-node {written_by}'"
                             + (" or without torchrun" if written_by == 1 else ""))
        if meta["fingerprint"] | {"config": None} != fingerprint | {"config": None} or \
                _resumable(meta["fingerprint"]["config"]) != _resumable(fingerprint["config"]):
            raise InputError(f"the checkpoint in {path.parent} was made with other data or settings; "
                             "rerun with the same ones or without --resume")
        tensors = load_file(str(path))
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        missing = set(keys) - set(weights)
        if missing:
            raise InputError(f"{path} lacks {sorted(missing)[0]!r}; rerun without --resume")
        model.load_state_dict(weights, strict=False)
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = v
        groups = meta["param_groups"]
        for g in groups:
            g["betas"] = tuple(g["betas"])
        opt.load_state_dict({"state": opt_state, "param_groups": groups})
        if meta["scaler"]:
            scaler.load_state_dict(meta["scaler"])
        prefix = _rng_prefix(self.rank)
        rng = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)} if meta["batches_done"] else None
        state = {k: meta[k] for k in ("epoch", "batches_done", "step", "best_key", "best_epoch", "bad_epochs",
                                      "history", "sums", "stopped_early")}
        if not self.is_main:  # the saved sums are every process's: rank 0 carries them on, the others restart at 0
            state["sums"] = {k: 0.0 for k in state["sums"]}
        return state, rng

    def _write_log(self, history: list[dict[str, Any]]) -> None:
        if self.out_dir is None or not self.is_main:
            return
        with atomic_path(self.out_dir / self.log_name) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in history))


def refuse_existing(out_dir: str | os.PathLike, marker: str, what: str, *, resume: bool, overwrite: bool) -> Path:
    """The one overwrite guard of the trainers: an error when ``out_dir`` already holds ``what`` (its ``marker`` file)
    or a checkpoint, unless the run resumes or overwrites it on purpose."""
    out = Path(out_dir)
    if not resume and not overwrite and ((out / marker).exists() or (out / CHECKPOINT_DIR).exists()):
        raise InputError(f"{out} already holds {what}; pass --overwrite to replace it or --resume to continue")
    return out


def read_checkpoint_state(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The loop state stored in ``out_dir/checkpoint/last.safetensors`` (epochs done, history, settings)."""
    path = Path(out_dir) / CHECKPOINT_DIR / LAST
    if not path.is_file():
        raise InputError(f"{path} not found: nothing to resume; run without --resume")
    try:
        with safe_open(str(path), "pt") as f:
            return json.loads((f.metadata() or {})["state"])
    except Exception:  # a truncated or foreign file: safetensors and json raise various types
        raise InputError(f"{path} is not a pigeon checkpoint; delete it and run without --resume") from None


def _resumable(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a resume must share (more epochs may be asked for)."""
    return {k: v for k, v in config.items() if k not in ("epochs", "device", "checkpoint_every", "warmup_epochs")}


def _as_key(key: Any) -> Any:
    """A selection key as JSON keeps it (tuples become lists), so a restored key compares with a new one."""
    return list(key) if isinstance(key, tuple) else key


def _saved_keys(model: nn.Module) -> list[str]:
    """Names of what a checkpoint holds: trainable parameters and (persistent) buffers; frozen weights never change."""
    saved = set(model.state_dict(keep_vars=True))
    names = [n for n, p in model.named_parameters() if p.requires_grad] + [n for n, _ in model.named_buffers()]
    return [n for n in names if n in saved]


def _weights(model: nn.Module, keys: list[str]) -> dict[str, torch.Tensor]:
    sd = model.state_dict(keep_vars=False)
    return {k: sd[k].detach().cpu().clone().contiguous() for k in keys}


def _accumulate(sums: dict[str, float], stats: dict[str, Any], n: int) -> None:
    sums["n"] = sums.get("n", 0) + n
    for k, v in stats.items():
        sums[k] = sums.get(k, 0.0) + float(v.detach() if isinstance(v, torch.Tensor) else v) * n


def _seed(seed: int, epoch: int, device: torch.device, rank: int = 0) -> None:
    """Seed an epoch's random draws (dropout); each process draws its own."""
    value = seed * 100_003 + epoch + rank * 1_000_003
    torch.manual_seed(value)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(value)


def _rng_prefix(rank: int) -> str:
    """Key prefix of a process's RNG state in a checkpoint (``rng.`` for rank 0, as single-process runs write)."""
    return "rng." if rank == 0 else f"rng{rank}."


def _get_rng(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
