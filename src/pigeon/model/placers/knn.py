"""``knn``: the retrieval baseline. Candidates are the gallery images nearest to the query, over all cells.

It needs the refiner's gallery (:data:`pigeon.model.placers.refine.REFINER`) and no head.

Probabilities: ``softmax(score / T)`` over the :data:`POOL` nearest gallery images (or ``k`` when more are asked
for), with the refiner's similarity ``score`` and temperature ``T``: a distribution over gallery points. The
images beyond the pool are left out.
"""

from __future__ import annotations

import numpy as np

from pigeon.model._prediction import Placement
from pigeon.model.placers._registry import register_placer
from pigeon.model.placers.refine import REFINER

#: Nearest gallery images the softmax runs over, so that a candidate's probability does not depend on ``k``.
POOL = 64


@register_placer("knn", "the nearest training image over the whole gallery (the retrieval baseline)",
                 needs=(REFINER,), label="nearest training image (kNN)")
def place_knn(geo, X: np.ndarray, probs: np.ndarray, k: int) -> Placement:
    """The ``k`` nearest gallery images, nearest first."""
    from scipy.special import softmax  # here: a prediction with another method does not load scipy

    refiner = geo.artefacts[REFINER.name]
    rows, scores = refiner.nearest(X, max(k, POOL))
    weights = softmax(np.asarray(scores, np.float64) / refiner.config.temperature, axis=1)
    gallery = refiner.gallery
    rows = rows[:, :k]
    latlon = np.stack([gallery["lat"].to_numpy()[rows], gallery["lon"].to_numpy()[rows]], axis=-1)
    return Placement(gallery["cell"].to_numpy()[rows], latlon, weights[:, :k], np.ones(len(X), bool))
