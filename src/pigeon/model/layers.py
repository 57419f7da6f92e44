"""The geolocator's heads: geocell classifier plus optional auxiliary heads on the same embedding."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pigeon._config import JsonConfig


@dataclass(frozen=True)
class HeadConfig(JsonConfig):
    """Shapes of a :class:`GeolocatorHead` (saved in ``config.json``).

    Attributes:
        in_dim: embedding size D.
        n_cells: number of geocells C.
        hidden_dim: None for the paper's linear geocell head, else the width of a one-hidden-layer MLP.
        dropout: dropout on the embedding (and the MLP's hidden layer).
        n_climate: Köppen classes of the climate head (0: no head).
        n_months: outputs of the month head (0: no head, 12 otherwise).
        regression: names of the regression head's outputs (empty: no head).
    """

    in_dim: int
    n_cells: int
    hidden_dim: int | None = None
    dropout: float = 0.0
    n_climate: int = 0
    n_months: int = 0
    regression: tuple[str, ...] = field(default_factory=tuple)


class GeocellHead(nn.Module):
    """Embedding ``(N, D)`` -> geocell logits ``(N, C)``: one linear layer (paper) or a small MLP.

    The MLP's hidden layer (``trunk``) is the representation the auxiliary heads share; for the linear head the
    trunk is the identity, so on frozen embeddings the auxiliary heads cannot change the geocell predictions.
    """

    def __init__(self, in_dim: int, n_cells: int, hidden_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_dim:
            self.trunk: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout))
        else:
            self.trunk = nn.Identity()
        #: size of the trunk's output (what the classifier and the auxiliary heads read).
        self.features_dim = hidden_dim or in_dim
        self.classifier = nn.Linear(self.features_dim, n_cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(x))


class GeolocatorHead(nn.Module):
    """All heads on one embedding, with the embedding standardised by saved training statistics.

    ``forward(x)`` takes raw embeddings ``(N, D)`` and returns a dict: ``geocell`` ``(N, C)`` logits and, when
    configured, ``climate`` ``(N, n_climate)`` and ``month`` ``(N, 12)`` logits and ``regression`` ``(N, R)``
    standardised values. The auxiliary heads are linear, as in the paper, on the geocell head's trunk (the
    embedding itself for the linear head, the shared hidden layer for the MLP).
    """

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("feature_mean", torch.zeros(cfg.in_dim))
        self.register_buffer("feature_std", torch.ones(cfg.in_dim))
        self.dropout = nn.Dropout(cfg.dropout)
        self.geocell = GeocellHead(cfg.in_dim, cfg.n_cells, cfg.hidden_dim, cfg.dropout)
        width = self.geocell.features_dim
        self.climate = nn.Linear(width, cfg.n_climate) if cfg.n_climate else None
        self.month = nn.Linear(width, cfg.n_months) if cfg.n_months else None
        self.regression = nn.Linear(width, len(cfg.regression)) if cfg.regression else None

    def set_feature_stats(self, x: torch.Tensor) -> None:
        """Standardise inputs with the mean and std of training embeddings ``x`` (N, D)."""
        self.feature_mean.copy_(x.mean(0))
        self.feature_std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.geocell.trunk(self.dropout((x - self.feature_mean) / self.feature_std))
        out = {"geocell": self.geocell.classifier(h)}
        for name in ("climate", "month", "regression"):
            head = getattr(self, name)
            if head is not None:
                out[name] = head(h)
        return out
