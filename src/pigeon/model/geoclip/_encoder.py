"""GeoCLIP's two towers: a location encoder (Equal Earth projection -> random Fourier features at several scales ->
one MLP capsule per scale, summed) and a projection of any backbone's image embeddings into the same space.

The operations follow GeoCLIP (Vivanco Cepeda et al., NeurIPS 2023; ``VicenteVivan/geo-clip``) step by step, so its
published weights load into these modules and give the same features (see :mod:`pigeon.model.geoclip._published`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pigeon.model.geoclip._config import EncoderConfig

#: Equal Earth polynomial coefficients (Šavrič, Patterson & Jenny 2018).
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
#: GeoCLIP's scale: ``x * SF / 180`` puts x in [-1, 1] and y in [-0.487, 0.487] (180 / SF is the unit sphere's
#: half-width 2√3π / (3 A1) to 6 digits).
SF = 66.50336


def equal_earth(latlon: torch.Tensor) -> torch.Tensor:
    """(N, 2) (lat, lon) degrees -> (N, 2) Equal Earth (x, y) on the unit sphere, times ``SF / 180``.

    Computed in the input's dtype in GeoCLIP's order of operations (so float32 features match its to rounding).
    """
    lat, lon = torch.deg2rad(latlon[:, 0]), torch.deg2rad(latlon[:, 1])
    theta = torch.asin((torch.sqrt(torch.tensor(3.0)) / 2) * torch.sin(lat))
    denominator = 3 * (9 * A4 * theta ** 8 + 7 * A3 * theta ** 6 + 3 * A2 * theta ** 2 + A1)
    x = (2 * torch.sqrt(torch.tensor(3.0)) * lon * torch.cos(theta)) / denominator
    y = A4 * theta ** 9 + A3 * theta ** 7 + A2 * theta ** 3 + A1 * theta
    return (torch.stack((x, y), dim=1) * SF) / 180


class FourierFeatures(nn.Module):
    """``v (N, 2) -> (cos 2πBv, sin 2πBv) (N, 2F)`` with fixed frequencies ``B (F, 2)`` drawn from N(0, sigma²)."""

    def __init__(self, sigma: float, n_frequencies: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.randn((n_frequencies, 2), generator=generator) * sigma, requires_grad=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        vp = 2 * np.pi * v @ self.b.T
        return torch.cat((torch.cos(vp), torch.sin(vp)), dim=-1)


class LocationCapsule(nn.Module):
    """One scale: Fourier features -> ``depth`` x (linear, ReLU) -> linear to the shared space."""

    def __init__(self, sigma: float, cfg: EncoderConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.fourier = FourierFeatures(sigma, cfg.n_frequencies, generator)
        widths = [2 * cfg.n_frequencies] + [cfg.hidden_dim] * cfg.depth
        self.mlp = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(cfg.hidden_dim, cfg.dim)

    def forward(self, projected: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(self.fourier(projected)))


class LocationEncoder(nn.Module):
    """(N, 2) (lat, lon) degrees -> (N, dim) location features: the sum of one capsule per scale of ``sigmas``."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        generator = torch.Generator().manual_seed(cfg.seed)
        self.capsules = nn.ModuleList(LocationCapsule(s, cfg, generator) for s in cfg.sigmas)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        projected = equal_earth(latlon)
        features = torch.zeros(len(latlon), self.cfg.dim, device=latlon.device)
        for capsule in self.capsules:
            features += capsule(projected)
        return features


class ImageProjection(nn.Module):
    """(N, D) backbone embeddings -> (N, dim): standardised by saved training statistics, then GeoCLIP's MLP
    (linear, ReLU, linear). Published GeoCLIP weights keep the identity standardisation."""

    def __init__(self, in_dim: int, cfg: EncoderConfig) -> None:
        super().__init__()
        hidden = cfg.projection_hidden or in_dim
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, cfg.dim))

    @property
    def in_dim(self) -> int:
        return self.feature_mean.numel()

    def set_feature_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Standardise inputs with these training statistics (D,)."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x - self.feature_mean) / self.feature_std)


#: The learnable temperature starts at CLIP's 1 / 0.07 and is capped at 100, as in CLIP.
INITIAL_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = math.log(100.0)


class GeoClipTowers(nn.Module):
    """Both towers and the learnable temperature: ``logits(x, latlon) = exp(scale) * cos(image, location)``."""

    def __init__(self, in_dim: int, cfg: EncoderConfig) -> None:
        super().__init__()
        with torch.random.fork_rng():  # seeded initial weights, without touching the caller's random stream
            torch.manual_seed(cfg.seed)
            self.image = ImageProjection(in_dim, cfg)
            self.location = LocationEncoder(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))

    @property
    def cfg(self) -> EncoderConfig:
        return self.location.cfg

    def scale(self) -> torch.Tensor:
        """The temperature ``exp(logit_scale)``, capped at 100."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings -> (N, dim) unit vectors."""
        return nn.functional.normalize(self.image(x), dim=1)

    def location_features(self, latlon: torch.Tensor) -> torch.Tensor:
        """(N, 2) degrees -> (N, dim) unit vectors."""
        return nn.functional.normalize(self.location(latlon), dim=1)
