"""How the posterior is bounded and which guess a model gives by default (saved in the model's ``config.json``)."""

from __future__ import annotations

from dataclasses import dataclass

from pigeon._config import JsonConfig
from pigeon.errors import InputError, UnknownNameError

#: The guess objectives: ``mode`` the placer's own answer (today's), ``distance`` the candidate that minimises the
#: expected great-circle distance, ``score`` the one that maximises the expected GeoGuessr score.
GUESSES = ("mode", "distance", "score")
#: The objective of a model folder that records none (made before the posterior existed): its old answer.
LEGACY_GUESS = "mode"


def check_guess(guess: str) -> str:
    """``guess`` when it is one of :data:`GUESSES`, else a one-line error naming them."""
    if guess not in GUESSES:
        raise UnknownNameError("guess objective", str(guess), GUESSES, "pass --guess mode, distance or score")
    return guess


def check_credible(q: float) -> float:
    """``q`` when it is a mass strictly between 0 and 1 (the credible region's), else a one-line error."""
    if not isinstance(q, (int, float)) or not 0 < q < 1:
        raise InputError(f"the credible mass must be in (0, 1), got {q!r}; pass e.g. --credible 0.9")
    return float(q)


@dataclass(frozen=True)
class PosteriorConfig(JsonConfig):
    """The posterior of a model: its default guess and the bounds that keep its cost small.

    Attributes:
        guess: the default objective (:data:`GUESSES`); a model with a validation split keeps ``mode`` unless another
            objective was clearly nearer the truth there (``pigeon.model.choose_guess``, when its calibration is
            fitted).
        credible: default mass of the credible region.
        sharpen: let the refiner's cluster similarities sharpen the cell probabilities inside its top cells
            (``p_cell * softmax(score / T)``, the top cells' total mass kept).
        support_mass: per query, the most probable cells up to this cumulative mass get their within-cell shape...
        shape_cells: ...but at most this many; every other cell is a disc at its centroid.
        points_per_cell: training locations kept per cell (a deterministic, spatially stratified sample).
        anchors: cells whose centroids are best under the coarse (centroid-to-centroid) objective; their centroids
            are candidates.
        point_cells: the training locations of this many most probable cells, and of as many best anchors, are
            candidates too.
        coarse_max_cells: up to this many cells the coarse search precomputes the cell-to-cell distances
            (C x C float32); above, it searches only the most probable cells.
    """

    guess: str = "distance"
    credible: float = 0.9
    sharpen: bool = False
    support_mass: float = 0.999
    shape_cells: int = 8
    points_per_cell: int = 16
    anchors: int = 8
    point_cells: int = 2
    coarse_max_cells: int = 5000

    def validate(self) -> PosteriorConfig:
        """Check values; raise :class:`InputError` naming the bad one."""
        check_guess(self.guess)
        check_credible(self.credible)
        checks = [
            (0 < self.support_mass <= 1, f"support_mass must be in (0, 1], got {self.support_mass}"),
            (self.shape_cells >= 1, f"shape_cells must be >= 1, got {self.shape_cells}"),
            (self.points_per_cell >= 1, f"points_per_cell must be >= 1, got {self.points_per_cell}"),
            (self.anchors >= 1, f"anchors must be >= 1, got {self.anchors}"),
            (self.point_cells >= 1, f"point_cells must be >= 1, got {self.point_cells}"),
            (self.coarse_max_cells >= 1, f"coarse_max_cells must be >= 1, got {self.coarse_max_cells}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        return self
