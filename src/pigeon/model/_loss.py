"""Haversine label smoothing (PIGEON section 3.3) and the soft-target cross-entropy it feeds."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pigeon.geo import EARTH_RADIUS_KM
from pigeon.presets import TAU_PHOTOS_KM, TAU_STREETVIEW_KM  # noqa: F401  (the paper's temperatures live there)


def haversine_targets(coords: torch.Tensor, centroids: torch.Tensor, cells: torch.Tensor,
                      tau_km: float = TAU_STREETVIEW_KM) -> torch.Tensor:
    """Soft geocell targets from the distance of each sample to every cell centroid.

    ``y[n, i] = exp(-(d(x_n, c_i) - d(x_n, c_true(n))) / tau)`` as in the paper, then **normalised to sum 1
    over cells** (the reference code leaves the rows unnormalised, so its loss scale grows with the number of
    nearby cells). After normalisation the row is ``softmax(-d(x_n, .) / tau)``: subtracting the true cell's
    distance (paper) or the nearest centroid's (reference code) no longer makes a difference, and that is
    how it is computed here, stably. Distances are great-circle km on the sphere of
    :data:`pigeon.geo.EARTH_RADIUS_KM`, from unit-vector dot products in float64 (one matrix product; the same
    distance as the haversine formula to well under a metre).

    Args:
        coords: (N, 2) true (lat, lon) of the samples, degrees.
        centroids: (C, 2) cell centroids (lat, lon), degrees.
        cells: (N,) int index of each sample's true cell (kept for the paper's form; it cancels out).
        tau_km: temperature in km; smaller is closer to one-hot.

    Returns:
        (N, C) float tensor of targets, each row summing to 1.
    """
    if coords.shape[0] != cells.shape[0]:
        raise ValueError(f"coords has {coords.shape[0]} rows but cells has {cells.shape[0]}")
    cos_d = (_unit_vectors(coords) @ _unit_vectors(centroids).T).clamp(-1.0, 1.0)
    d = torch.nan_to_num(EARTH_RADIUS_KM * torch.arccos(cos_d), nan=float("inf"))
    return torch.softmax(-d / tau_km, dim=1).float()


def _unit_vectors(latlon: torch.Tensor) -> torch.Tensor:
    """(N, 2) (lat, lon) degrees -> (N, 3) float64 unit vectors."""
    lat, lon = torch.deg2rad(latlon.double()).unbind(1)
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)], dim=1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_i targets[n, i] * log_softmax(logits)[n, i]``.

    Args:
        logits: (N, C) unnormalised scores.
        targets: (N, C) probability targets (rows sum to 1); one-hot rows give plain cross-entropy.
    """
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def geocell_targets(coords: torch.Tensor, centroids: torch.Tensor, cells: torch.Tensor,
                    tau_km: float | None) -> torch.Tensor:
    """Haversine-smoothed targets, or one-hot targets when ``tau_km`` is None (no smoothing). Shape (N, C)."""
    if tau_km is None:
        return F.one_hot(cells.long(), num_classes=centroids.shape[0]).float()
    return haversine_targets(coords, centroids, cells, tau_km)
