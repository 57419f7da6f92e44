"""Pretraining settings: the paper's optimiser, per-preset captions and schedule, and what is trained."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pigeon._config import JsonConfig
from pigeon.engine import OptimConfig
from pigeon.engine._config import raise_first
from pigeon.errors import UnknownNameError

#: Per preset: caption style (``pigeon.geography.captions``) and the paper's epochs, learning rate and warm-up
#: share (PIGEON street view: 20 epochs, 1e-6, 0.2; PIGEOTTO photos: 4 epochs, 5e-7, 0.02; per-device batch 32
#: with 8 accumulation steps).
PRESETS: dict[str, dict[str, Any]] = {
    "streetview": {"style": "streetview", "epochs": 20, "lr": 1e-6, "warmup_ratio": 0.2, "batch_size": 32,
                   "grad_accum": 8},
    "photo": {"style": "photo", "epochs": 4, "lr": 5e-7, "warmup_ratio": 0.02, "batch_size": 32, "grad_accum": 8},
}
LAYERS = ("all", "last")


@dataclass
class PretrainConfig(JsonConfig):
    """How :func:`pigeon.pretrain.pretrain` trains (recorded in the output folder's ``meta.json``).

    ``None`` fields take the preset's value (see :data:`PRESETS`); the rest are the paper's optimiser defaults.

    Attributes:
        preset: ``"streetview"`` (PIGEON captions) or ``"photo"`` (PIGEOTTO captions).
        epochs, lr, warmup_ratio, batch_size, grad_accum: preset defaults; ``batch_size`` images per contrastive
            batch (each location at most once), ``grad_accum`` batches per optimiser step.
        head_lr: learning rate of the layers pretraining adds (projections, auxiliary heads, logit scale).
        weight_decay, betas, eps, clip_norm: AdamW and gradient clipping (paper: 1e-3, 0.9/0.98, 1e-6, 1.0);
            linear decay after the warm-up.
        layers: ``"all"`` trains both towers entirely (the paper); ``"last"`` only the last block of each tower
            plus the projections (cheaper, what the fine-tuning step unfreezes).
        aux: add the auxiliary losses on the image features (climate, month, geodata regression).
        regression_weight, climate_weight, month_weight: their weights (paper: 8, 2, 1).
        embed_dim: size of the shared space of the offline towers' learned projections.
        max_tokens: captions are cut to this many tokens.
        seed, device, precision, checkpoint_every: see :class:`pigeon.engine.OptimConfig`.
    """

    preset: str = "streetview"
    epochs: int | None = None
    lr: float | None = None
    warmup_ratio: float | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    head_lr: float = 1e-3
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    clip_norm: float | None = 1.0
    layers: str = "all"
    aux: bool = True
    regression_weight: float = 8.0
    climate_weight: float = 2.0
    month_weight: float = 1.0
    embed_dim: int = 256
    max_tokens: int = 64
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    checkpoint_every: int = 0

    def resolved(self) -> PretrainConfig:
        """A copy with every ``None`` replaced by the preset's value, checked."""
        if self.preset not in PRESETS:
            raise UnknownNameError("pretraining preset", self.preset, PRESETS)
        preset = PRESETS[self.preset]
        out = replace(self, **{k: preset[k] for k in ("epochs", "lr", "warmup_ratio", "batch_size", "grad_accum")
                               if getattr(self, k) is None})
        checks = [
            (out.layers in LAYERS, f"layers must be one of {', '.join(LAYERS)}, got {out.layers!r}"),
            (0 <= out.warmup_ratio <= 1, f"warmup must be a share of the steps in [0, 1], got {out.warmup_ratio}"),
            (out.head_lr > 0, f"head_lr must be > 0, got {out.head_lr}"),
            (out.embed_dim >= 1 and out.max_tokens >= 4, "embed_dim must be >= 1 and max_tokens >= 4"),
        ]
        raise_first(checks)
        out.optim().validate()
        return out

    @property
    def style(self) -> str:
        return PRESETS[self.preset]["style"]

    @property
    def aux_weights(self) -> dict[str, float]:
        return {"climate": self.climate_weight, "month": self.month_weight, "regression": self.regression_weight}

    def optim(self) -> OptimConfig:
        """The engine settings (call on a :meth:`resolved` config)."""
        return OptimConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, betas=tuple(self.betas),
                           eps=self.eps, warmup_epochs=self.warmup_ratio * self.epochs, schedule="linear",
                           grad_accum=self.grad_accum, clip_norm=self.clip_norm, precision=self.precision,
                           seed=self.seed, device=self.device, checkpoint_every=self.checkpoint_every)
