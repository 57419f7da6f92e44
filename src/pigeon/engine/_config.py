"""How a model is optimised: AdamW, warm-up + schedule, accumulation, clipping, precision, stopping."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pigeon._config import PRECISIONS, JsonConfig
from pigeon.errors import InputError

SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class OptimConfig(JsonConfig):
    """Settings of :class:`pigeon.engine.Engine` (saved with every checkpoint; a resume must match them).

    Attributes:
        epochs: passes over the sampler.
        lr: peak learning rate of every parameter group that does not set its own.
        weight_decay, betas, eps: AdamW.
        warmup_epochs: linear warm-up from 0 over this many epochs (fractions allowed), then ``schedule``.
        schedule: ``"cosine"`` or ``"linear"`` decay to 0 at the last step, or ``"constant"``.
        grad_accum: micro-batches whose gradients are summed into one optimiser step.
        clip_norm: clip the global gradient norm to this value (None: no clipping).
        precision: ``"auto"`` (bf16/fp16 autocast on CUDA, float32 elsewhere), ``"fp32"``, ``"bf16"``, ``"fp16"``.
        patience: stop after this many epochs without a better selected metric (None: never stop early).
        seed: seeds each epoch's random draws (dropout), so a resumed run repeats an uninterrupted one.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``...
        checkpoint_every: also checkpoint every this many optimiser steps inside an epoch (0: at epoch ends).
    """

    epochs: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    grad_accum: int = 1
    clip_norm: float | None = None
    precision: str = "auto"
    patience: int | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 0

    def validate(self) -> OptimConfig:
        """Check values; raise :class:`InputError` naming the bad one."""
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (all(0 <= b < 1 for b in self.betas), f"betas must be in [0, 1), got {self.betas}"),
            (self.eps > 0, f"eps must be > 0, got {self.eps}"),
            (self.warmup_epochs >= 0, f"warmup must be >= 0, got {self.warmup_epochs}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"),
            (self.clip_norm is None or self.clip_norm > 0, f"clip_norm must be > 0, got {self.clip_norm}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.patience is None or self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
        ]
        raise_first(checks)
        return self


def raise_first(checks: list[tuple[bool, str]]) -> None:
    """Raise :class:`InputError` with the message of the first failed ``(ok, message)`` check."""
    for ok, msg in checks:
        if not ok:
            raise InputError(msg)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based) of ``total``.

    Linear warm-up over ``warmup`` steps (reaching the peak at the last warm-up step), then cosine or linear
    decay towards 0 at ``total``, or constant.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    return 1.0
