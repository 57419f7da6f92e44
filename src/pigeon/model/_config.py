"""How the geolocator is trained: the head (:class:`TrainConfig`) and the end-to-end fine-tuning
(:class:`FinetuneConfig`). Plain dataclasses without torch, so that the CLI's help texts can show their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from pigeon._config import JsonConfig
from pigeon.engine._config import OptimConfig, raise_first
from pigeon.presets import TAU_STREETVIEW_KM

#: How the views of a location combine: ``"mean"`` averages their embeddings (the paper's best), ``"first"`` uses
#: one (see :mod:`pigeon.model._views`).
VIEW_RULES = ("mean", "first")
#: Candidate cells a prediction lists when the caller does not say.
DEFAULT_TOP_K = 5


@dataclass
class AuxWeights:
    """Weights of the auxiliary losses (paper: geodata regression 8, Köppen climate 2, month 1), shared by head
    training, fine-tuning and pretraining."""

    regression_weight: float = 8.0
    climate_weight: float = 2.0
    month_weight: float = 1.0

    @property
    def aux_weights(self) -> dict[str, float]:
        """``{"climate", "month", "regression"}`` -> weight, as :func:`pigeon.model.aux_loss` takes them."""
        return {"climate": self.climate_weight, "month": self.month_weight, "regression": self.regression_weight}


@dataclass
class TrainConfig(AuxWeights, JsonConfig):
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
        regression_weight, climate_weight, month_weight: auxiliary loss weights (:class:`AuxWeights`).
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
    device: str = "auto"

    def validate(self) -> TrainConfig:
        """Check values; raise :class:`InputError` naming the bad one."""
        checks = [
            (self.tau_km > 0, f"tau_km must be > 0 km, got {self.tau_km}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.views in VIEW_RULES, f"views must be one of {', '.join(VIEW_RULES)}, got {self.views!r}"),
            (0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}"),
            (self.hidden_dim is None or self.hidden_dim >= 1, f"hidden_dim must be >= 1, got {self.hidden_dim}"),
        ]
        raise_first(checks)
        self.optim().validate()
        return self

    def optim(self) -> OptimConfig:
        """The engine settings of head training: AdamW, warm-up then cosine, early stopping."""
        return OptimConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                           warmup_epochs=self.warmup_epochs, schedule="cosine", patience=self.patience,
                           seed=self.seed, device=self.device, precision="fp32")


@dataclass
class FinetuneConfig(JsonConfig):
    """How :func:`pigeon.model.finetune` trains the backbone's last block and the heads end to end.

    Attributes:
        epochs, lr: AdamW with a linear warm-up over ``warmup_epochs`` then cosine decay over ``epochs``.
        batch_size: locations (each with all its views) per step, split between the processes under torchrun.
        grad_accum: steps whose gradients are summed into one optimiser step.
        seed: seeds the shuffling and dropout.
        aux: also train the auxiliary heads, whose losses then shape the unfrozen block (False: geocell loss only,
            the ablation).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
    """

    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 16
    grad_accum: int = 1
    warmup_epochs: float = 0.1
    seed: int = 0
    aux: bool = True
    device: str = "auto"

    def validate(self) -> FinetuneConfig:
        """Check values; raise :class:`InputError` naming the bad one."""
        raise_first([(self.epochs >= 1 and self.lr > 0 and self.batch_size >= 1,
                      f"fine-tuning needs epochs >= 1, lr > 0 and batch_size >= 1; got {self.epochs}, {self.lr}, "
                      f"{self.batch_size}")])
        self.optim(0.0).validate()
        return self

    def optim(self, weight_decay: float) -> OptimConfig:
        """The engine settings (the head's weight decay: it is the same heads that train)."""
        return OptimConfig(epochs=self.epochs, lr=self.lr, weight_decay=weight_decay,
                           warmup_epochs=self.warmup_epochs, schedule="cosine", grad_accum=self.grad_accum,
                           seed=self.seed, device=self.device)
