"""Pretraining settings: the paper's optimiser, captions and schedule, and what is trained."""

from __future__ import annotations

from dataclasses import dataclass

from pigeon._config import JsonConfig
from pigeon.engine._config import OptimConfig, raise_first
from pigeon.model._config import AuxWeights

LAYERS = ("all", "last")


@dataclass
class PretrainConfig(AuxWeights, JsonConfig):
    """How :func:`pigeon.pretrain.pretrain` trains (recorded in the output folder's ``meta.json``).

    The defaults are the street-view set-up (PIGEON: 20 epochs at lr 1e-6, a fifth of the steps warming up, batches
    of 32 with 8 accumulation steps); the ``photo`` preset of :mod:`pigeon.presets` holds PIGEOTTO's.

    Attributes:
        caption_style: the templates of :func:`pigeon.geography.captions` (``"streetview"`` or ``"photo"``).
        epochs, lr, warmup_ratio: the schedule: peak learning rate of the pretrained layers, share of the steps
            spent warming up, then linear decay.
        batch_size: images per contrastive batch (each location at most once), split between the processes under
            torchrun; ``grad_accum``: batches per optimiser step.
        head_lr: learning rate of the layers pretraining adds (projections, auxiliary heads, logit scale).
        weight_decay, betas, eps, clip_norm: AdamW and gradient clipping (paper: 1e-3, 0.9/0.98, 1e-6, 1.0).
        layers: ``"all"`` trains both towers entirely (the paper); ``"last"`` only the last block of each tower
            plus the projections (cheaper, what the fine-tuning step unfreezes).
        aux: add the auxiliary losses on the image features (climate, month, geodata regression), weighted by
            ``regression_weight``, ``climate_weight``, ``month_weight`` (:class:`pigeon.model.AuxWeights`).
        embed_dim: size of the shared space of the offline towers' learned projections.
        max_tokens: captions are cut to this many tokens.
        seed, device, precision, checkpoint_every: see :class:`pigeon.engine.OptimConfig`.
    """

    caption_style: str = "streetview"
    epochs: int = 20
    lr: float = 1e-6
    warmup_ratio: float = 0.2
    batch_size: int = 32
    grad_accum: int = 8
    head_lr: float = 1e-3
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    clip_norm: float | None = 1.0
    layers: str = "all"
    aux: bool = True
    embed_dim: int = 256
    max_tokens: int = 64
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    checkpoint_every: int = 0

    def validate(self) -> PretrainConfig:
        """Check values; raise :class:`InputError` naming the bad one."""
        from pigeon.geography import caption_settings

        caption_settings(self.caption_style)  # an unknown style is an error naming the known ones
        checks = [
            (self.layers in LAYERS, f"layers must be one of {', '.join(LAYERS)}, got {self.layers!r}"),
            (0 <= self.warmup_ratio <= 1, f"warmup must be a share of the steps in [0, 1], got {self.warmup_ratio}"),
            (self.head_lr > 0, f"head_lr must be > 0, got {self.head_lr}"),
            (self.embed_dim >= 1 and self.max_tokens >= 4, "embed_dim must be >= 1 and max_tokens >= 4"),
        ]
        raise_first(checks)
        self.optim().validate()
        return self

    def optim(self) -> OptimConfig:
        """The engine settings."""
        return OptimConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, betas=tuple(self.betas),
                           eps=self.eps, warmup_epochs=self.warmup_ratio * self.epochs, schedule="linear",
                           grad_accum=self.grad_accum, clip_norm=self.clip_norm, precision=self.precision,
                           seed=self.seed, device=self.device, checkpoint_every=self.checkpoint_every)
