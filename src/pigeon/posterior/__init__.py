"""The posterior over the globe of each prediction, and the answers taken from it.

The head's cell probabilities are calibrated (:class:`Calibration`: a temperature, optionally sharpened by the
refiner's retrieval, flattened toward the training prior on ground unlike the validation split's), each cell's mass
is spread over its training locations (:class:`CellSupport`), and :class:`Posterior` answers for a batch of queries:
the guess for an objective (:data:`GUESSES`), P(within r km) of a point, the credible region.

Pure numpy/scipy; nothing here imports a later stage of the pipeline.

>>> post = Posterior(masses, CellSupport.build(centroids, areas, gallery_latlon, gallery_cell))
>>> latlon, cell = post.guess("distance")
>>> post.p_within(latlon)            # (B, 5): within 1, 25, 200, 750, 2500 km
>>> post.credible(0.9).area_km2      # (B,)
"""

from pigeon.posterior._calibration import WITHIN_GRID, Calibration, fit_calibration, fit_within
from pigeon.posterior._config import GUESSES, LEGACY_GUESS, PosteriorConfig, check_credible, check_guess
from pigeon.posterior._discs import disc_share, km_between
from pigeon.posterior._posterior import CredibleRegions, Posterior, coordinate_decimals
from pigeon.posterior._support import NO_GALLERY, CellSupport, stratified_sample

__all__ = [
    "GUESSES", "LEGACY_GUESS", "NO_GALLERY", "WITHIN_GRID", "Calibration", "CellSupport", "CredibleRegions",
    "Posterior",
    "PosteriorConfig", "check_credible", "check_guess", "coordinate_decimals", "disc_share",
    "fit_calibration", "fit_within", "km_between", "stratified_sample",
]
