"""``cell``: the head alone. Each candidate is one of the most probable cells, at its centroid.

Probabilities: the head's cell probabilities (a distribution over all cells; the candidates are its top k).
"""

from __future__ import annotations

import numpy as np

from pigeon.model._prediction import Placement, place_by_centroid, top_cells
from pigeon.model.placers._registry import register_placer


@register_placer("cell", "the centroid of the head's most probable cell (the head alone)", preference=100,
                 label="pigeon head only (cell centroid)")
def place_cell(geo, X: np.ndarray, probs: np.ndarray, k: int) -> Placement:
    """The head's top ``k`` cells, in its order, at their centroids."""
    return place_by_centroid(top_cells(probs, min(k, geo.n_cells)), geo.cells.centroids, probs)
