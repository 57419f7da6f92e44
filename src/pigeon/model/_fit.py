"""Training the heads on cached embeddings: AdamW, warm-up + cosine, early stopping on validation median km.

The loop works on plain arrays (``X (N, D)``, ``coords (N, 2)``, cell labels, centroids), so it is testable on
synthetic data; :func:`pigeon.model.train` feeds it from a manifest, geocells and an embeddings store.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from pigeon._io import atomic_path, read_json, write_json
from pigeon._progress import progress
from pigeon.errors import InputError
from pigeon.geo import haversine_km
from pigeon.model._aux import N_MONTHS, AuxTargets, Standardiser
from pigeon.model._prediction import cell_guess
from pigeon.model._views import VIEW_RULES
from pigeon.model._loss import TAU_STREETVIEW_KM, geocell_targets, soft_cross_entropy
from pigeon.model.layers import GeolocatorHead, HeadConfig

CHECKPOINT_DIR = "checkpoint"
TRAIN_LOG = "train_log.jsonl"


@dataclass
class TrainConfig:
    """How the heads are trained (every field is saved in the model's ``config.json``).

    Attributes:
        tau_km: haversine label-smoothing temperature, km (75 street view, 65 general photos).
        smoothing: False trains with one-hot cross-entropy (the ablation).
        hidden_dim: None for the paper's linear geocell head, else an MLP of this width.
        dropout: dropout on the standardised embedding.
        aux: train the auxiliary heads for the columns the data has.
        views: ``"mean"`` averages the view embeddings of a location (the paper's best), ``"first"`` uses one.
        epochs, batch_size, lr, weight_decay: AdamW schedule; ``warmup_epochs`` of linear warm-up, then cosine.
        patience: stop after this many epochs without a better validation median km.
        val_fraction: share of the training rows held out for validation when the data has no ``val`` split.
        seed: seeds the initialisation, the shuffling and dropout (a rerun gives the same model).
        regression_weight, climate_weight, month_weight: auxiliary loss weights (paper: 8, 2, 1).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
    """

    tau_km: float = TAU_STREETVIEW_KM
    smoothing: bool = True
    hidden_dim: int | None = None
    dropout: float = 0.1
    aux: bool = True
    views: str = "mean"
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    patience: int = 8
    val_fraction: float = 0.1
    seed: int = 0
    regression_weight: float = 8.0
    climate_weight: float = 2.0
    month_weight: float = 1.0
    device: str = "auto"

    def validate(self) -> TrainConfig:
        """Check values; raise :class:`InputError` naming the bad one."""
        checks = [
            (self.tau_km > 0, f"tau_km must be > 0 km, got {self.tau_km}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.views in VIEW_RULES, f"views must be one of {', '.join(VIEW_RULES)}, got {self.views!r}"),
            (0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.hidden_dim is None or self.hidden_dim >= 1, f"hidden_dim must be >= 1, got {self.hidden_dim}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class FitResult:
    """What :func:`fit_head` returns.

    Attributes:
        head: the trained head, with the weights of the best epoch, in eval mode on the CPU.
        standardiser: the regression standardiser (None without a regression head).
        history: one dict per epoch (losses, accuracy, validation median km, lr, seconds).
        best: the record of the chosen epoch.
        n_train, n_val: rows used for training and for validation.
    """

    head: GeolocatorHead
    standardiser: Standardiser | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    n_val: int = 0


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_head(in_dim: int, n_cells: int, config: TrainConfig, aux: AuxTargets | None) -> GeolocatorHead:
    """A freshly initialised head for the data (auxiliary heads only for the targets present)."""
    aux = aux if (config.aux and aux is not None) else AuxTargets()
    cfg = HeadConfig(
        in_dim=in_dim, n_cells=n_cells, hidden_dim=config.hidden_dim, dropout=config.dropout,
        n_climate=len(aux.climate_classes) if aux.climate is not None else 0,
        n_months=N_MONTHS if aux.month is not None else 0,
        regression=aux.regression_columns if aux.regression is not None else (),
    )
    return GeolocatorHead(cfg)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` steps."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))


def fit_head(
    X: np.ndarray, coords: np.ndarray, cells: np.ndarray, centroids: np.ndarray, *,
    aux: AuxTargets | None = None,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
) -> FitResult:
    """Train a :class:`GeolocatorHead` on embeddings.

    Args:
        X: (N, D) float training embeddings.
        coords: (N, 2) true (lat, lon) degrees.
        cells: (N,) int true geocell of each sample.
        centroids: (C, 2) cell centroids (lat, lon) degrees; a prediction is the centroid of the top cell.
        aux: auxiliary targets of the N samples (used when ``config.aux``).
        val: ``(X_val, coords_val, cells_val)`` for early stopping; by default ``config.val_fraction`` of the
            training rows are held out (seeded).
        config: the :class:`TrainConfig`.
        out_dir: when given, a checkpoint is written there every epoch (``checkpoint/``, safetensors + JSON)
            and the per-epoch log ``train_log.jsonl``.
        resume: continue from the checkpoint in ``out_dir`` (same data and config), else start afresh.
        callbacks: called with each epoch's record after its checkpoint is written.

    Returns:
        A :class:`FitResult` whose head holds the epoch with the lowest validation median km.
    """
    config = (config or TrainConfig()).validate()
    X, coords, cells, centroids = _check_arrays(X, coords, cells, centroids)
    if val is None:
        train_rows, val_rows = _holdout(len(X), config.val_fraction, config.seed)
        val = (X[val_rows], coords[val_rows], cells[val_rows])
        X, coords, cells = X[train_rows], coords[train_rows], cells[train_rows]
        aux = aux.subset(train_rows) if aux is not None else None
    X_val, coords_val, cells_val, _ = _check_arrays(*val, centroids)
    if X_val.shape[1] != X.shape[1]:
        raise InputError(f"validation embeddings have {X_val.shape[1]} dims, training ones {X.shape[1]}")
    aux = aux if config.aux else None
    device = resolve_device(config.device)

    torch.manual_seed(config.seed)
    head = build_head(X.shape[1], len(centroids), config, aux)
    head.set_feature_stats(torch.from_numpy(X))
    standardiser = None
    targets: dict[str, torch.Tensor] = {}
    if aux is not None:
        if head.climate is not None:
            targets["climate"] = torch.from_numpy(aux.climate)
        if head.month is not None:
            targets["month"] = torch.from_numpy(aux.month)
        if head.regression is not None:
            standardiser = Standardiser.fit(aux.regression_columns, aux.regression)
            targets["regression"] = torch.from_numpy(standardiser.transform(aux.regression)).float()
    head.to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)

    data = {"x": torch.from_numpy(X).to(device), "coords": torch.from_numpy(coords).to(device),
            "cells": torch.from_numpy(cells).to(device), **{k: v.to(device) for k, v in targets.items()}}
    cents = torch.from_numpy(centroids).to(device)
    steps_per_epoch = math.ceil(len(X) / config.batch_size)
    total, warmup = config.epochs * steps_per_epoch, max(1, round(config.warmup_epochs * steps_per_epoch))
    tau = config.tau_km if config.smoothing else None

    ckpt = _Checkpoint(Path(out_dir) / CHECKPOINT_DIR) if out_dir is not None else None
    state = {"epoch": 0, "best_key": None, "bad_epochs": 0, "history": []}
    if resume:
        if ckpt is None:
            raise InputError("resume needs an output folder holding a checkpoint")
        state = ckpt.restore(head, opt, config, len(X))
    history: list[dict[str, Any]] = state["history"]
    best_state: dict[str, torch.Tensor] | None = None

    with progress() as bar:
        task = bar.add_task("training head", total=config.epochs, completed=state["epoch"], info="")
        for epoch in range(state["epoch"], config.epochs):
            if state["bad_epochs"] >= config.patience:  # early stop (also when resuming a stopped run)
                break
            t0 = time.perf_counter()
            record = _train_epoch(head, opt, data, cents, tau, config, epoch, steps_per_epoch, total, warmup)
            record.update(_evaluate(head, X_val, coords_val, cells_val, centroids, tau, device))
            record.update(epoch=epoch + 1, seconds=round(time.perf_counter() - t0, 3))
            history.append(record)
            key = [record["val_median_km"], record["val_loss"]]
            improved = state["best_key"] is None or key < state["best_key"]
            state.update(epoch=epoch + 1, best_key=key if improved else state["best_key"],
                         bad_epochs=0 if improved else state["bad_epochs"] + 1, history=history)
            if improved:
                best_state = {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
                state["best_epoch"] = epoch + 1
            if ckpt is not None:
                ckpt.save(head, opt, config, len(X), state, best_state if improved else None)
                _write_log(Path(out_dir) / TRAIN_LOG, history)
            bar.update(task, advance=1, info=f"loss {record['train_loss']:.3f}  "
                                             f"val median {record['val_median_km']:.0f} km")
            for callback in callbacks:
                callback(record)

    if ckpt is not None:
        best_state = ckpt.best_state()
    head.load_state_dict(best_state)
    head.cpu().eval()
    best = next(r for r in history if r["epoch"] == state["best_epoch"])
    return FitResult(head, standardiser, history, best, len(X), len(X_val))


def _check_arrays(X, coords, cells, centroids):
    X = np.ascontiguousarray(X, dtype=np.float32)
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    cells = np.asarray(cells, dtype=np.int64).ravel()
    centroids = np.array(centroids, dtype=np.float64).reshape(-1, 2)  # a copy: GeoCells exposes read-only arrays
    if X.ndim != 2 or not len(X):
        raise InputError(f"embeddings must be a non-empty (N, D) array, got shape {X.shape}")
    if not (len(X) == len(coords) == len(cells)):
        raise InputError(f"embeddings ({len(X)}), coords ({len(coords)}) and cells ({len(cells)}) differ in length")
    if cells.min() < 0 or cells.max() >= len(centroids):
        raise InputError(f"cell labels must be in [0, {len(centroids)}), got {cells.min()}..{cells.max()}")
    if not np.isfinite(X).all():
        raise InputError("embeddings contain NaN or inf; re-embed the images")
    return X, coords, cells, centroids


def _holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into train and validation rows."""
    if n < 2:
        raise InputError(f"need at least 2 training rows to hold out a validation set, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _aux_losses(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], config: TrainConfig) -> torch.Tensor:
    """Weighted sum of the auxiliary losses; unknown labels (-1 / NaN) are left out."""
    loss = out["geocell"].new_zeros(())
    for name, weight in (("climate", config.climate_weight), ("month", config.month_weight)):
        if name in out:
            known = batch[name] >= 0
            if known.any():
                loss = loss + weight * F.cross_entropy(out[name][known], batch[name][known])
    if "regression" in out:
        y = batch["regression"]
        known = torch.isfinite(y)
        if known.any():
            loss = loss + config.regression_weight * F.mse_loss(out["regression"][known], y[known])
    return loss


def _train_epoch(head, opt, data, cents, tau, config, epoch, steps_per_epoch, total, warmup) -> dict[str, Any]:
    head.train()
    torch.manual_seed(config.seed * 100_003 + epoch)  # dropout; the order below has its own generator
    order = torch.randperm(len(data["x"]), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
    sums = {"loss": 0.0, "geo": 0.0, "correct": 0}
    for i in range(steps_per_epoch):
        lr = lr_at(epoch * steps_per_epoch + i, total, warmup, config.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = order[i * config.batch_size:(i + 1) * config.batch_size].to(data["x"].device)
        batch = {k: v[idx] for k, v in data.items()}
        out = head(batch["x"])
        geo = soft_cross_entropy(out["geocell"], geocell_targets(batch["coords"], cents, batch["cells"], tau))
        loss = geo + _aux_losses(out, batch, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sums["loss"] += loss.item() * len(idx)
        sums["geo"] += geo.item() * len(idx)
        sums["correct"] += int((out["geocell"].argmax(1) == batch["cells"]).sum())
    n = len(data["x"])
    return {"lr": lr, "train_loss": sums["loss"] / n, "train_geocell_loss": sums["geo"] / n,
            "train_acc": sums["correct"] / n}


@torch.no_grad()
def _evaluate(head, X, coords, cells, centroids, tau, device, batch_size: int = 4096) -> dict[str, float]:
    """Validation geocell loss, cell accuracy and km error of the top cell's centroid."""
    head.eval()
    cents = torch.from_numpy(centroids).to(device)
    loss, top = 0.0, []
    for i in range(0, len(X), batch_size):
        x = torch.from_numpy(X[i:i + batch_size]).to(device)
        logits = head(x)["geocell"]
        c = torch.from_numpy(coords[i:i + batch_size]).to(device)
        y = torch.from_numpy(cells[i:i + batch_size]).to(device)
        loss += soft_cross_entropy(logits, geocell_targets(c, cents, y, tau)).item() * len(x)
        top.append(logits.argmax(1).cpu().numpy())
    top = np.concatenate(top)
    guess = cell_guess(centroids, top)
    km = haversine_km(coords[:, 0], coords[:, 1], guess[:, 0], guess[:, 1])
    return {"val_loss": loss / len(X), "val_acc": float((top == cells).mean()),
            "val_median_km": float(np.median(km)), "val_mean_km": float(km.mean())}


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in history))


class _Checkpoint:
    """``last.safetensors`` (head + AdamW state), ``best.safetensors`` (head) and ``state.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, head, opt, config: TrainConfig, n_train: int, state: dict, best_state: dict | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        opt_sd = opt.state_dict()
        tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
        tensors.update({f"opt.{pid}.{k}": v.detach().cpu().contiguous()
                        for pid, s in opt_sd["state"].items() for k, v in s.items()})
        if best_state is not None:
            with atomic_path(self.root / "best.safetensors") as tmp:
                save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp))
        with atomic_path(self.root / "last.safetensors") as tmp:
            save_file(tensors, str(tmp))
        write_json(self.root / "state.json", {**state, "config": config.to_dict(), "n_train": n_train,
                                             "param_groups": opt_sd["param_groups"]})

    def restore(self, head, opt, config: TrainConfig, n_train: int) -> dict:
        state = read_json(self.root / "state.json", hint="nothing to resume; train without --resume")
        saved = TrainConfig.from_dict(state["config"])
        if asdict(saved) | {"epochs": 0} != asdict(config) | {"epochs": 0} or state["n_train"] != n_train:
            raise InputError(f"the checkpoint in {self.root} was made with other data or settings; "
                             "rerun with the same ones or without --resume")
        tensors = load_file(str(self.root / "last.safetensors"))
        head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = v
        opt.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
        return state

    def best_state(self) -> dict[str, torch.Tensor]:
        return load_file(str(self.root / "best.safetensors"))
