"""How the geoclip method is built: the towers' shapes (:class:`EncoderConfig`) and its training
(:class:`GeoClipConfig`). Plain dataclasses without torch, so that the CLI's help texts can show their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pigeon._config import JsonConfig
from pigeon.engine._config import OptimConfig, raise_first


@dataclass(frozen=True)
class EncoderConfig(JsonConfig):
    """Shapes of the two towers (saved with the method's artefact).

    Attributes:
        sigmas: standard deviations of the random Fourier frequencies, one capsule each, in cycles per projected
            half-width (about 20,000 km): 1, 16, 256 resolve roughly 20,000, 1,250 and 80 km.
        n_frequencies: frequencies per scale (each gives a cosine and a sine).
        hidden_dim: width of a capsule's hidden layers.
        depth: hidden layers per capsule (linear + ReLU each).
        dim: size of the shared embedding space.
        projection_hidden: hidden width of the image projection (None: the embedding size, as GeoCLIP).
        seed: draws the Fourier frequencies and the initial weights.
    """

    sigmas: tuple[float, ...] = (1.0, 16.0, 256.0)
    n_frequencies: int = 128
    hidden_dim: int = 256
    depth: int = 2
    dim: int = 256
    projection_hidden: int | None = None
    seed: int = 0

    def validate(self) -> EncoderConfig:
        """Check values; raise :class:`pigeon.errors.InputError` naming the bad one."""
        raise_first([
            (len(self.sigmas) >= 1 and all(s > 0 for s in self.sigmas), f"sigmas must be > 0, got {self.sigmas}"),
            (self.n_frequencies >= 1, f"n_frequencies must be >= 1, got {self.n_frequencies}"),
            (self.hidden_dim >= 1, f"hidden_dim must be >= 1, got {self.hidden_dim}"),
            (self.depth >= 1, f"depth must be >= 1, got {self.depth}"),
            (self.dim >= 1, f"dim must be >= 1, got {self.dim}"),
            (self.projection_hidden is None or self.projection_hidden >= 1,
             f"projection_hidden must be >= 1, got {self.projection_hidden}"),
        ])
        return self


#: GeoCLIP's published shapes: 3 scales of 256 frequencies, capsules of three 1024-wide layers, 512-d space.
GEOCLIP_SHAPES = EncoderConfig(sigmas=(2.0 ** 0, 2.0 ** 4, 2.0 ** 8), n_frequencies=256, hidden_dim=1024, depth=3,
                               dim=512, projection_hidden=768)


@dataclass(frozen=True)
class GeoClipConfig(JsonConfig):
    """How the geoclip method is built (saved with its artefact).

    Attributes:
        encoder: the towers' shapes (:class:`EncoderConfig`; GeoCLIP's own are :data:`GEOCLIP_SHAPES`).
        epochs, batch_size, lr, weight_decay, warmup_epochs, patience: AdamW with warm-up and cosine decay,
            stopping when the validation median km has not improved for ``patience`` epochs.
        queue_size: GPS negatives kept from earlier batches (GeoCLIP: 4096).
        val_fraction: share of the training locations held out to choose the epoch.
        gallery: a CSV / Parquet file of ``lat``, ``lon`` to place guesses on (None: the training locations).
        views: train on the embedding of every view of a location (4 pairs for a 4-view location) rather than
            on their pooled embedding; queries are still pooled by the model's view rule.
        seed: seeds the towers, the shuffling and the queue.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    patience: int | None = 10
    queue_size: int = 1024
    val_fraction: float = 0.1
    gallery: str | None = None
    views: bool = True
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeoClipConfig:
        d = dict(d)
        if isinstance(d.get("encoder"), dict):
            d["encoder"] = EncoderConfig.from_dict(d["encoder"])
        return super().from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "encoder": self.encoder.to_dict()}

    def validate(self) -> GeoClipConfig:
        """Check values; raise :class:`InputError` naming the bad one."""
        self.encoder.validate()
        raise_first([
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.queue_size >= 0, f"queue_size must be >= 0, got {self.queue_size}"),
            (0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}"),
        ])
        self.optim().validate()
        return self

    def optim(self) -> OptimConfig:
        return OptimConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, betas=(0.9, 0.98),
                           eps=1e-6, warmup_epochs=self.warmup_epochs, schedule="cosine", patience=self.patience,
                           seed=self.seed, device=self.device, precision="fp32")
