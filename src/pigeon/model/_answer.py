"""The posterior stage of prediction: the guess for an objective, P(within r) of it, the credible region and the
candidates shown beside it, for a batch of queries (:mod:`pigeon.posterior` does the math)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pigeon.geo import RADII_KM
from pigeon.model._prediction import Placement
from pigeon.posterior import CredibleRegions, Posterior, PosteriorConfig, check_credible, check_guess


@dataclass
class Answers:
    """What the posterior stage decides for N queries.

    Attributes:
        guess: the objective.
        cells: (N, k) the candidates shown: the guess's cell first.
        latlon: (N, k, 2) their locations (the guess first).
        p_within: (N, R) P(within each of :data:`RADII_KM` of the guess), or None without a gallery.
        unseen: (N,) unseen-ground score, or None.
        expected_km: (N,) expected distance from the guess to the truth.
        regions: the credible regions.
    """

    guess: str
    cells: np.ndarray
    latlon: np.ndarray
    p_within: np.ndarray | None
    unseen: np.ndarray | None
    expected_km: np.ndarray
    regions: CredibleRegions


def answer(posterior: Posterior, placement: Placement, guess: str, credible: float, top_k: int,
           unseen: np.ndarray | None = None) -> Answers:
    """The guess for ``guess`` (``mode``: the placer's first candidate), what the posterior says of it, the credible
    region of mass ``credible`` and ``top_k`` candidates to show."""
    check_guess(guess)
    check_credible(credible)
    if guess == "mode":
        latlon, cell = placement.latlon[:, 0], placement.cells[:, 0]
        cells, points = placement.cells[:, :top_k], placement.latlon[:, :top_k]
    else:
        latlon, cell = posterior.guess(guess, placement.latlon, placement.cells)
        cells, points = rank_candidates(posterior.masses, placement, cell, latlon, top_k,
                                        posterior.support.centroids)
    p_within = posterior.p_within(latlon, RADII_KM) if posterior.support.has_gallery else None
    return Answers(guess, cells, points, p_within, unseen, posterior.expected(latlon), posterior.credible(credible))


def rank_candidates(masses: np.ndarray, placement: Placement, cell: np.ndarray, latlon: np.ndarray, k: int,
                    centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The guess's cell and point first, then the most probable other cells, each at the placer's location for it
    (its first candidate in that cell) or else at its centroid: ``(cells (N, k), latlon (N, k, 2))``."""
    n = len(masses)
    k = min(k, masses.shape[1])
    order = np.argsort(-masses, axis=1, kind="stable")[:, :k]
    others = np.where(order == cell[:, None], -1, order)
    keep = np.argsort(others < 0, axis=1, kind="stable")[:, :k - 1]  # the guess's cell moved out, order kept
    cells = np.concatenate([cell[:, None], np.take_along_axis(order, keep, axis=1)], axis=1)
    points = np.asarray(centroids, np.float64)[cells]
    match = cells[:, :, None] == placement.cells[:, None, :]  # (N, k, placer's candidates)
    found = match.any(axis=2)
    first = match.argmax(axis=2)
    placed = placement.latlon[np.arange(n)[:, None], first]
    points = np.where(found[..., None], placed, points)
    points[:, 0] = latlon
    return cells, points


def default_posterior_config(config: dict) -> PosteriorConfig:
    """The posterior settings a model's ``config.json`` records; a folder from before them answers as it did
    (``guess="mode"``)."""
    from pigeon.posterior import LEGACY_GUESS

    recorded = config.get("posterior")
    if recorded is None:
        return PosteriorConfig(guess=LEGACY_GUESS)
    return PosteriorConfig.from_dict(recorded).validate()
