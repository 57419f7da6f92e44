"""Training the geoclip towers contrastively on (embedding, GPS) pairs with a queue of GPS negatives.

Each step scores the batch's image embeddings against the batch's own locations plus a queue of locations from
earlier steps (GeoCLIP's "dynamic queue"): the cross-entropy of each image against its own location. Queue entries
at an image's own coordinates are masked (on small data the queue holds every location several times). It runs on
:class:`pigeon.engine.Engine` (checkpoints, resume, logs, curves, early stopping on the validation median km).

Under ``torchrun`` every process reads the same rows and takes its share of each global batch; the batch's
locations are gathered, so every process scores against the same candidates and updates the same queue, and the
averaged gradients equal one process's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pigeon._device import all_gather_object
from pigeon.engine import Engine, ShuffleSampler
from pigeon.errors import InputError
from pigeon.geo import haversine_km
from pigeon.model.geoclip._config import GeoClipConfig
from pigeon.model.geoclip._encoder import GeoClipTowers
from pigeon.model.geoclip._gallery import top_points

TRAIN_LOG = "train_log.jsonl"
PANELS = [
    ("loss", [("train_loss", "train")]),
    ("in-batch accuracy", [("train_acc", "train")]),
    ("val median error (km) (log)", [("val_median_km", "median"), ("val_mean_km", "mean")]),
]


class ContrastiveTask(nn.Module):
    """The towers and the GPS queue: ``forward(batch) -> (loss, stats, n)`` as :class:`Engine` expects.

    ``batch`` holds ``x`` (B, D) embeddings and ``gps`` (B, 2) their locations (this process's share of the step).
    """

    def __init__(self, towers: GeoClipTowers, queue: torch.Tensor) -> None:
        super().__init__()
        self.towers = towers
        self.register_buffer("queue", queue.float().clone())
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def forward(self, batch: dict[str, torch.Tensor]):
        x, gps = batch["x"], batch["gps"]
        everyone, offset = _gather_batch(gps)  # the whole step's locations, the same on every process
        candidates = torch.cat([everyone, self.queue])
        logits = self.towers.scale() * self.towers.image_features(x) @ self.towers.location_features(candidates).T
        targets = offset + torch.arange(len(x), device=x.device)
        same = (candidates[None] == gps[:, None]).all(-1)  # the image's own coordinates, repeated elsewhere
        same[torch.arange(len(x)), targets] = False
        logits = logits.masked_fill(same, float("-inf"))
        loss = nn.functional.cross_entropy(logits, targets)
        acc = (logits.argmax(1) == targets).float().mean()
        self._enqueue(everyone)
        return loss, {"acc": acc.detach(), "scale": self.towers.scale().detach()}, len(x)

    @torch.no_grad()
    def _enqueue(self, gps: torch.Tensor) -> None:
        """Put a step's locations into the ring buffer, overwriting the oldest."""
        size = len(self.queue)
        if not self.training or size == 0:
            return
        gps = gps[-size:]
        slots = (int(self.queue_ptr) + torch.arange(len(gps), device=gps.device)) % size
        self.queue[slots] = gps.to(self.queue.dtype)
        self.queue_ptr[0] = (int(self.queue_ptr) + len(gps)) % size


def _gather_batch(gps: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every process's locations of this step in rank order, and where this process's rows start."""
    parts = all_gather_object(gps.detach().cpu().numpy())
    if len(parts) == 1:
        return gps, 0
    rank = torch.distributed.get_rank()
    return torch.from_numpy(np.concatenate(parts)).to(gps), sum(len(p) for p in parts[:rank])


@dataclass
class GeoClipFit:
    """What :func:`fit_geoclip` returns: the towers of the chosen epoch (eval mode, CPU) and the history."""

    towers: GeoClipTowers
    history: list[dict[str, Any]]
    best: dict[str, Any]
    n_train: int
    n_val: int


def fit_geoclip(X: np.ndarray, coords: np.ndarray, config: GeoClipConfig | None = None, *,
                val: tuple[np.ndarray, np.ndarray] | None = None, out_dir: str | os.PathLike | None = None,
                resume: bool = False, callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> GeoClipFit:
    """Train the towers on embeddings ``X`` (N, D) of locations ``coords`` (N, 2, degrees).

    Args:
        X, coords: the training pairs (every process passes all of them).
        config: the :class:`GeoClipConfig`.
        val: ``(X_val, coords_val)`` choosing the epoch by the median km of the top gallery point (the gallery: the
            training locations); default ``config.val_fraction`` of the training pairs, held out (seeded).
        out_dir: the engine's checkpoint, ``train_log.jsonl`` and ``curves.png`` (None: nothing written).
        resume: continue from the checkpoint in ``out_dir``.
        callbacks: called with each epoch's record after its checkpoint is written.
    """
    from pigeon.model._fit import _holdout

    config = (config or GeoClipConfig()).validate()
    X, coords = _check_pairs(X, coords)
    if val is None:
        train_rows, val_rows = _holdout(len(X), config.val_fraction, config.seed)
        val, X, coords = (X[val_rows], coords[val_rows]), X[train_rows], coords[train_rows]
    X_val, coords_val = _check_pairs(*val)
    engine = Engine(config.optim(), out_dir, log_name=TRAIN_LOG, description="training geoclip", panels=PANELS,
                    callbacks=callbacks)
    towers = GeoClipTowers(X.shape[1], config.encoder)
    towers.image.set_feature_stats(X.mean(0), X.std(0))
    queue = coords[np.random.default_rng(config.seed).integers(0, len(coords), config.queue_size)]
    task = ContrastiveTask(towers, torch.from_numpy(queue))
    data = {"x": torch.from_numpy(X).to(engine.device), "gps": torch.from_numpy(coords).float().to(engine.device)}
    world = engine.world_size
    batch = max(world, min(config.batch_size, len(X)) // world * world)  # a small set: one batch of all of it
    sampler = ShuffleSampler(len(X), engine.per_rank(batch), config.seed, rank=engine.rank, world_size=world)
    result = engine.fit(task, sampler, lambda idx: {k: v[torch.as_tensor(idx, device=engine.device)]
                                                    for k, v in data.items()},
                        evaluate=lambda t: gallery_validation(t.towers, X_val, coords_val, coords),
                        select=lambda r: r["val_median_km"],
                        fingerprint={"task": config.to_dict(), "n_train": len(X), "n_val": len(X_val)},
                        resume=resume)
    towers.cpu().eval()
    return GeoClipFit(towers, result.history, result.best, len(X), len(X_val))


@torch.no_grad()
def gallery_validation(towers: GeoClipTowers, X: np.ndarray, coords: np.ndarray,
                       gallery: np.ndarray) -> dict[str, float]:
    """Median and mean km from each validation location to its top gallery point."""
    device = towers.logit_scale.device
    points = towers.location_features(torch.as_tensor(gallery, dtype=torch.float32, device=device))
    image = towers.image_features(torch.as_tensor(X, device=device))
    rows, _ = top_points(image, points, float(towers.scale()), 1)
    km = haversine_km(coords[:, 0], coords[:, 1], gallery[rows[:, 0], 0], gallery[rows[:, 0], 1])
    return {"val_median_km": float(np.median(km)), "val_mean_km": float(km.mean())}


def _check_pairs(X, coords) -> tuple[np.ndarray, np.ndarray]:
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if X.ndim != 2 or not len(X) or len(X) != len(coords):
        raise InputError(f"need (N, D) embeddings and (N, 2) coordinates of the same N, got {X.shape} and "
                         f"{coords.shape}")
    if not np.isfinite(X).all():
        raise InputError("embeddings contain NaN or inf; re-embed the images")
    return X, coords
