"""The posterior stage of prediction: the guess for an objective, what the posterior says of it (P(within r),
expected error, credible region) and the candidates shown beside it, for a batch of queries (:mod:`pigeon.posterior`
does the math)."""

from __future__ import annotations

import functools

import numpy as np

from pigeon.geo import RADII_KM
from pigeon.model._prediction import Placement
from pigeon.posterior import Calibration, CredibleRegions, Posterior, PosteriorConfig, check_credible, check_guess


class Answers:
    """What the posterior stage decides for N queries.

    The guess and the candidates are computed at once; the expected error, P(within r) and the credible regions,
    which need the cells' areas (and so their shapes), for the whole batch the first time they are read (a ``mode``
    answer that nobody asks "how sure" of loads no shapes).

    Attributes:
        guess: the objective.
        masses: (N, C) the posterior's cell probabilities.
        cells, latlon, probs: (N, k) the candidates shown, the guess first: cells, locations (N, k, 2) and the
            probability they are ranked by (the placer's for ``mode``, else the cell's posterior probability).
        unseen: (N,) unseen-ground score, or None.
    """

    def __init__(self, posterior: Posterior, placement: Placement, guess: str, credible: float, top_k: int,
                 unseen: np.ndarray | None = None, within: Calibration | None = None) -> None:
        check_guess(guess)
        self.q = check_credible(credible)
        self.posterior, self.guess, self.unseen, self.within = posterior, guess, unseen, within
        self.masses = posterior.masses
        k = min(top_k, placement.cells.shape[1] if guess == "mode" else self.masses.shape[1])
        if guess == "mode":
            self.point = placement.latlon[:, 0]
            self.cells, self.latlon = placement.cells[:, :k], placement.latlon[:, :k]
            self.probs = placement.probs[:, :k]
        else:
            self.point, cell = posterior.guess(guess, placement.latlon, placement.cells)
            self.cells, self.latlon = rank_candidates(self.masses, placement, cell, self.point, k,
                                                      posterior.support.centroids)
            self.probs = np.take_along_axis(self.masses, self.cells, axis=1)

    @functools.cached_property
    def expected_km(self) -> np.ndarray:
        """(N,) expected distance from the guess to the truth (it needs the cells' areas, read on first use)."""
        return self.posterior.expected(self.point)

    @functools.cached_property
    def p_within(self) -> np.ndarray | None:
        """(N, R) P(within each of :data:`RADII_KM` of the guess), through the calibration's map for this objective
        when ``within`` holds one (as far as each query is like the validation queries the map was fitted on);
        None without a gallery."""
        if not self.posterior.support.has_gallery:
            return None
        p = self.posterior.p_within(self.point, RADII_KM)
        return p if self.within is None else self.within.within_probabilities(self.guess, p, self.unseen)

    @functools.cached_property
    def regions(self) -> CredibleRegions:
        return self.posterior.credible(self.q)


def rank_candidates(masses: np.ndarray, placement: Placement, cell: np.ndarray, latlon: np.ndarray, k: int,
                    centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The guess's cell and point first, then the most probable other cells, each at the placer's location for it
    (its first candidate in that cell) or else at its centroid: ``(cells (N, k), latlon (N, k, 2))``."""
    n = len(masses)
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
