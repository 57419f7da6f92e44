"""The geometry the posterior needs: great-circle km from unit vectors, and how much of a uniform disc lies within
r km of a point (the area of two circles' lens, on the tangent plane)."""

from __future__ import annotations

import numpy as np

from pigeon.geo import EARTH_RADIUS_KM, GEOGUESSR_DECAY_KM


def km_between(a_xyz: np.ndarray, b_xyz: np.ndarray) -> np.ndarray:
    """Great-circle km between unit vectors ``a (..., G, 3)`` and ``b (..., S, 3)``: ``(..., G, S)`` float32.

    From the chord length, summed over coordinate differences: float32 keeps metres at short range (a dot
    product would lose kilometres there) at half the cost of float64.
    """
    a = np.asarray(a_xyz, np.float32)[..., :, None, :]
    b = np.asarray(b_xyz, np.float32)[..., None, :, :]
    chord = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), np.float32)
    for k in range(3):
        step = a[..., k] - b[..., k]
        step *= step
        chord += step
    np.sqrt(chord, out=chord)
    chord *= 0.5
    np.minimum(chord, 1.0, out=chord)
    np.arcsin(chord, out=chord)
    chord *= 2.0 * EARTH_RADIUS_KM
    return chord


def objective_of(km: np.ndarray, objective: str) -> np.ndarray:
    """What a guess ``km`` from the truth costs (distance, to minimise) or earns (GeoGuessr score, to maximise)."""
    return km if objective == "distance" else 5000.0 * np.exp(km * np.float32(-1.0 / GEOGUESSR_DECAY_KM))


def disc_share(d: np.ndarray, r: float, a: np.ndarray) -> np.ndarray:
    """Share of a uniform disc of radius ``a`` whose centre is ``d`` km from a point that lies within ``r`` km of it.

    Exact on the plane (the lens of two circles); ``d`` and ``a`` broadcast. Only discs cut by the circle of
    radius ``r`` cost more than a comparison.
    """
    d, a = np.broadcast_arrays(np.asarray(d, np.float64), np.asarray(a, np.float64))
    share = (d + a <= r).astype(np.float64)
    cut = (d < r + a) & (d + a > r)
    if not cut.any():
        return share
    dc, ac = d[cut], a[cut]
    inside = dc + r <= ac  # the circle lies inside the disc
    ds = np.maximum(dc, 1e-12)
    alpha = np.arccos(np.clip((ds ** 2 + r ** 2 - ac ** 2) / (2 * ds * r), -1.0, 1.0))
    beta = np.arccos(np.clip((ds ** 2 + ac ** 2 - r ** 2) / (2 * ds * ac), -1.0, 1.0))
    k = np.maximum((-ds + r + ac) * (ds + r - ac) * (ds - r + ac) * (ds + r + ac), 0.0)
    lens = r ** 2 * alpha + ac ** 2 * beta - 0.5 * np.sqrt(k)
    share[cut] = np.where(inside, (r / ac) ** 2, lens / (np.pi * ac ** 2))
    return share
