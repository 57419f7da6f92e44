"""Training the heads on cached embeddings with :class:`pigeon.engine.Engine` (AdamW, warm-up + cosine, early
stopping on a validation metric that the caller can replace).

The task works on plain arrays (``X (N, D)``, ``coords (N, 2)``, cell labels, centroids), so it is testable on
synthetic data; :func:`pigeon.model.train` feeds it from a manifest, geocells and an embeddings store.

Under ``torchrun`` each process reads only its share of the embeddings (a contiguous block of the training rows and
every N-th validation row), so ``X`` may be anything that reads rows on demand (``len``, ``shape``,
``X[positions] -> float32``), such as :class:`pigeon.model.StoreRows` over an embeddings store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pigeon._device import all_gather_object, all_reduce_sum
from pigeon.engine import Engine, ShuffleSampler
from pigeon.errors import InputError
from pigeon.geo import haversine_km
from pigeon.model._aux import N_MONTHS, AuxTargets, Standardiser, aux_loss, aux_tensors
from pigeon.model._config import TrainConfig
from pigeon.model._loss import geocell_targets, soft_cross_entropy
from pigeon.model._prediction import cell_guess
from pigeon.model.layers import GeolocatorHead, HeadConfig
from pigeon.validation import check_labelled

TRAIN_LOG = "train_log.jsonl"
#: What ``curves.png`` of a head shows.
HEAD_PANELS = [
    ("loss", [("train_loss", "train (total)"), ("train_geocell_loss", "train (geocell)"), ("val_loss", "val (geocell)")]),
    ("geocell accuracy", [("train_acc", "train"), ("val_acc", "val")]),
    ("val median error (km) (log)", [("val_median_km", "median"), ("val_mean_km", "mean")]),
]

#: ``validation(head) -> metrics``: what chooses the epoch (lower ``val_median_km``, then ``val_loss``).
Validation = Callable[[GeolocatorHead], dict[str, float]]


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


class GeolocatorLoss(nn.Module):
    """``head`` plus its training loss: ``forward(batch) -> (loss, stats, n)`` as :class:`Engine` expects.

    ``batch`` holds ``x`` (embeddings), ``coords``, ``cells`` and the auxiliary targets; the loss is the
    (haversine-smoothed) geocell cross-entropy plus the weighted auxiliary losses of the targets given.
    """

    def __init__(self, head: GeolocatorHead, centroids: np.ndarray, tau_km: float | None,
                 aux_weights: dict[str, float]) -> None:
        super().__init__()
        self.head = head
        self.tau_km, self.aux_weights = tau_km, aux_weights
        self._centroids = torch.tensor(np.asarray(centroids), dtype=torch.float64)

    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]):
        if self._centroids.device != out["geocell"].device:
            self._centroids = self._centroids.to(out["geocell"].device)
        targets = geocell_targets(batch["coords"], self._centroids, batch["cells"], self.tau_km)
        geo = soft_cross_entropy(out["geocell"].float(), targets)
        acc = (out["geocell"].argmax(1) == batch["cells"]).float().mean()
        return geo + aux_loss(out, batch, self.aux_weights), {"geocell_loss": geo.detach(), "acc": acc}, len(targets)

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.loss(self.head(batch["x"]), batch)


def top_cell_validation(X: np.ndarray, coords: np.ndarray, cells: np.ndarray, centroids: np.ndarray,
                        tau_km: float | None, batch_size: int = 4096) -> Validation:
    """The default validation: geocell loss, cell accuracy and km error of the top cell's centroid.

    Under torchrun each process passes its share of the validation rows; the per-row results are gathered, so every
    process returns the metrics of the whole set.
    """
    def validate(head: GeolocatorHead) -> dict[str, float]:
        device = head.feature_mean.device
        cents = torch.from_numpy(centroids).to(device)
        loss, top = 0.0, [np.empty(0, np.int64)]
        for i in range(0, len(X), batch_size):
            logits = head(torch.from_numpy(X[i:i + batch_size]).to(device))["geocell"].float()
            c = torch.from_numpy(coords[i:i + batch_size]).to(device)
            y = torch.from_numpy(cells[i:i + batch_size]).to(device)
            loss += soft_cross_entropy(logits, geocell_targets(c, cents, y, tau_km)).item() * len(c)
            top.append(logits.argmax(1).cpu().numpy())
        top = np.concatenate(top)
        guess = cell_guess(centroids, top)
        km = haversine_km(coords[:, 0], coords[:, 1], guess[:, 0], guess[:, 1])
        parts = all_gather_object((loss, top == cells, km))
        hit, km = (np.concatenate([p[k] for p in parts]) for k in (1, 2))
        return {"val_loss": sum(p[0] for p in parts) / len(km), "val_acc": float(hit.mean()),
                "val_median_km": float(np.median(km)), "val_mean_km": float(km.mean())}
    return validate


def fit_head(X: np.ndarray, coords: np.ndarray, cells: np.ndarray, centroids: np.ndarray, *,
             aux: AuxTargets | None = None, val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
             config: TrainConfig | None = None, out_dir: str | os.PathLike | None = None, resume: bool = False,
             callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
             validation: Validation | None = None) -> FitResult:
    """Train a :class:`GeolocatorHead` on embeddings.

    Under ``torchrun`` each process trains on its block of ``ceil(N / processes)`` rows (the last block is filled
    up with the first rows), with ``config.batch_size / processes`` rows a step, and validates on every N-th
    validation row; the gradients, the embedding statistics and the validation metrics are combined over processes.

    Args:
        X: (N, D) float training embeddings, or rows read on demand (``len``, ``shape``, ``X[positions]``, e.g.
            :class:`pigeon.model.StoreRows`); only this process's rows are read.
        coords: (N, 2) true (lat, lon) degrees.
        cells: (N,) int true geocell of each sample.
        centroids: (C, 2) cell centroids (lat, lon) degrees.
        aux: auxiliary targets of the N samples (used when ``config.aux``).
        val: ``(X_val, coords_val, cells_val)`` for early stopping (``X_val`` like ``X``); by default
            ``config.val_fraction`` of the training rows are held out (seeded).
        config: the :class:`TrainConfig`.
        out_dir: when given, the engine's checkpoint (``checkpoint/``), ``train_log.jsonl`` and ``curves.png``.
        resume: continue from the checkpoint in ``out_dir`` (same data and config), else start afresh.
        callbacks: called with each epoch's record after its checkpoint is written.
        validation: ``validation(head) -> metrics`` with ``val_median_km`` (and ideally ``val_loss``) that
            chooses the epoch; default :func:`top_cell_validation` on ``val`` (the top cell's centroid).

    Returns:
        A :class:`FitResult` whose head holds the epoch with the lowest validation median km.
    """
    config = (config or TrainConfig()).validate()
    X = X if hasattr(X, "shape") else np.asarray(X)
    coords, cells, centroids = _check_labels(X, coords, cells, centroids)
    engine = Engine(config.optim(), out_dir, log_name=TRAIN_LOG, description="training head", panels=HEAD_PANELS,
                    callbacks=callbacks)  # under torchrun: joins the process group
    rows = _Rows.split(X, coords, cells, centroids, aux, val, config)
    mine, filled, theirs, X_mine, X_val_mine = _shares(X, rows, engine.rank, engine.world_size)
    aux = rows.aux if config.aux else None
    tau = config.tau_km if config.smoothing else None
    head, standardiser = _new_head(X_mine, filled, centroids, config, aux, engine.world_size)
    aux_mine = aux.subset(mine) if aux is not None else AuxTargets()
    targets = {k: v for k, v in aux_tensors(aux_mine, standardiser).items() if getattr(head, k) is not None}
    data = {"x": torch.from_numpy(X_mine), "coords": torch.from_numpy(rows.coords[mine]),
            "cells": torch.from_numpy(rows.cells[mine]), **targets}
    data = {k: v.to(engine.device) for k, v in data.items()}
    validation = validation or top_cell_validation(X_val_mine, rows.coords_val[theirs], rows.cells_val[theirs],
                                                   centroids, tau)
    task = GeolocatorLoss(head, centroids, tau, config.aux_weights)
    sampler = ShuffleSampler(len(mine), engine.per_rank(config.batch_size), config.seed)
    result = engine.fit(
        task, sampler, lambda idx: {k: v[torch.as_tensor(idx, device=engine.device)] for k, v in data.items()},
        evaluate=lambda t: validation(t.head), select=lambda r: (r["val_median_km"], r.get("val_loss", 0.0)),
        fingerprint={"task": {k: v for k, v in config.to_dict().items() if k not in ("epochs", "device")},
                     "n_train": rows.n_train, "n_val": rows.n_val},
        resume=resume)
    head.cpu().eval()
    return FitResult(head, standardiser, result.history, result.best, rows.n_train, rows.n_val)


def _shares(X, rows: _Rows, rank: int, world: int):
    """This process's training positions (a block; ``filled`` marks the wrapped-around ones) and validation
    positions (every ``world``-th), with their embeddings read; an error on any process if one is not finite."""
    mine, filled = _block(rows.n_train, rank, world)
    theirs = np.arange(rank, rows.n_val, world)
    X_mine, X_val_mine = _read(X, rows.train[mine]), _read(rows.X_val, rows.val[theirs])
    bad = all_reduce_sum(np.array([not np.isfinite(X_mine).all() or not np.isfinite(X_val_mine).all()]))
    if bad.any():
        raise InputError("embeddings contain NaN or inf; re-embed the images")
    return mine, filled, theirs, X_mine, X_val_mine


def _new_head(X_mine: np.ndarray, filled: np.ndarray, centroids: np.ndarray, config: TrainConfig,
              aux: AuxTargets | None, world: int) -> tuple[GeolocatorHead, Standardiser | None]:
    """A seeded new head standardising with all processes' training rows, and the regression standardiser."""
    torch.manual_seed(config.seed)
    head = build_head(X_mine.shape[1], len(centroids), config, aux)
    _set_feature_stats(head, X_mine[~filled] if filled.any() else X_mine, world)
    standardiser = Standardiser.fit(aux.regression_columns, aux.regression) if head.regression is not None else None
    return head, standardiser


@dataclass
class _Rows:
    """Which rows train and which validate: positions into ``X`` (``train``) and ``X_val`` (``val``), with the
    training rows' coordinates, cells and auxiliary targets and the validation rows' coordinates and cells."""

    train: np.ndarray
    coords: np.ndarray
    cells: np.ndarray
    aux: AuxTargets | None
    X_val: Any
    val: np.ndarray
    coords_val: np.ndarray
    cells_val: np.ndarray

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_val(self) -> int:
        return len(self.val)

    @classmethod
    def split(cls, X, coords, cells, centroids, aux, val, config: TrainConfig) -> _Rows:
        """The given validation set, or ``config.val_fraction`` of the training rows held out (seeded)."""
        if val is None:
            train, held = _holdout(len(X), config.val_fraction, config.seed)
            rows = cls(train, coords[train], cells[train], aux.subset(train) if aux is not None else None,
                       X, held, coords[held], cells[held])
        else:
            X_val = val[0] if hasattr(val[0], "shape") else np.asarray(val[0])
            coords_val, cells_val, _ = _check_labels(X_val, val[1], val[2], centroids)
            rows = cls(np.arange(len(X)), coords, cells, aux, X_val, np.arange(len(X_val)), coords_val, cells_val)
        if rows.X_val.shape[1] != X.shape[1]:
            raise InputError(f"validation embeddings have {rows.X_val.shape[1]} dims, training ones {X.shape[1]}")
        return rows


def _check_labels(X, coords, cells, centroids):
    """Coordinates, labels and centroids as arrays, checked against each other and ``X``'s shape (not read)."""
    centroids = np.array(centroids, dtype=np.float64).reshape(-1, 2)  # a copy: GeoCells exposes read-only arrays
    coords, cells = check_labelled(X, coords, cells, len(centroids))
    return coords, cells, centroids


def _read(X, rows: np.ndarray) -> np.ndarray:
    """Rows of an array or of a reader of rows, as contiguous float32."""
    return np.ascontiguousarray(X[rows], dtype=np.float32)


def _block(n: int, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's training rows: a contiguous block of ``ceil(n / world)`` positions, the last ones filled up by
    wrapping around to the first rows so that every process has as many; and which of them are such fillers."""
    size = -(-n // world)
    positions = np.arange(rank * size, (rank + 1) * size)
    return positions % n, positions >= n


def _set_feature_stats(head: GeolocatorHead, X: np.ndarray, world: int) -> None:
    """Standardise with the mean and std of all processes' training rows (``X`` holds this process's)."""
    if world == 1:
        head.set_feature_stats(torch.from_numpy(X))
        return
    x = X.astype(np.float64)
    n, total, squares = np.split(all_reduce_sum(np.concatenate([[len(x)], x.sum(0), (x * x).sum(0)])),
                                 [1, 1 + x.shape[1]])
    mean = total / n[0]
    std = np.sqrt(np.maximum(squares - n[0] * mean ** 2, 0) / max(n[0] - 1, 1))
    head.feature_mean.copy_(torch.from_numpy(mean))
    head.feature_std.copy_(torch.from_numpy(std).clamp_min(1e-6))


def _holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into train and validation rows."""
    if n < 2:
        raise InputError(f"need at least 2 training rows to hold out a validation set, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
