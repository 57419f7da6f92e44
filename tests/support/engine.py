"""A toy task for the training engine: a linear regression with dropout (random, so resumes must restore the RNG)."""

from __future__ import annotations

import torch
from torch import nn


class Regression(nn.Module):
    """y = x @ w with dropout on the input: learnable, and random (so resume must restore the RNG)."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(8, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch):
        pred = self.linear(self.dropout(batch["x"])).squeeze(1)
        loss = ((pred - batch["y"]) ** 2).mean()
        return loss, {"mae": (pred - batch["y"]).abs().mean()}, len(pred)


def regression_data(n: int = 64) -> dict:
    """``n`` inputs ``x`` (n, 8) and targets ``y = x @ [0..7] + 0.5``, seeded."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=g)
    return {"x": x, "y": x @ torch.arange(8.0) + 0.5}
