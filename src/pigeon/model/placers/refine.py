"""``refine``: PIGEON's retrieval refinement inside the head's top cells, and the refiner artefact it needs.

The refiner (:class:`pigeon.refine.Refiner`, kept in ``MODEL/refiner/``) holds the training locations clustered
inside each cell with their embeddings. The refiner picks a cell among the head's top K by
``p_cell * softmax(score / T)`` and the nearest gallery member of its best cluster.

Probabilities: the refiner's distribution over its K candidate cells, ``p_cell * softmax(score / T)``
renormalised to sum to 1 over them, in the refiner's order (the guess first). Where the refiner falls back to the
top cell (too far a move) or finds no cluster, the order is the head's and so are the probabilities (renormalised
over the K cells). Candidates past the K (when more are asked for) follow in the head's order with probability 0:
the refiner never chooses them; their head probability stays in ``cell_prob``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pigeon.errors import InputError
from pigeon.model._prediction import Placement, cell_guess, top_cells
from pigeon.model.placers._registry import Artefact, TrainingData, register_placer
from pigeon.refine import RefineConfig, Refiner

_FIX = "rebuild it with 'pigeon refine build MODEL --manifest TRAIN' for this model"


class RefinerArtefact(Artefact):
    """The retrieval gallery (:class:`pigeon.refine.Refiner`) of the ``refine`` and ``knn`` methods."""

    name = "refiner"
    description = "the training locations clustered inside each cell, with their embeddings (retrieval gallery)"
    build_hint = "pigeon refine build MODEL --manifest TRAIN --embeddings EMB"

    def default_config(self, preset: str | None = None) -> RefineConfig:
        from pigeon.presets import resolve

        return resolve(RefineConfig, "refine", preset)

    def check_config(self, config: RefineConfig, n_cells: int) -> None:
        config.validate()
        if config.top_k > n_cells:
            raise InputError(f"the refiner's top_k {config.top_k} exceeds the model's {n_cells} cells (it chooses "
                             f"among the top {config.top_k} cells); use --top-k {n_cells} or fewer with 'pigeon "
                             "refine build' (or 'pigeon train --no-refine', then 'pigeon refine build')")

    def build(self, geo, data: TrainingData, config: RefineConfig | None,
              show_progress: bool = True) -> Refiner:
        config = config or self.default_config()
        self.check_config(config, geo.n_cells)
        return Refiner.build(np.asarray(data.X[:]), data.coords, data.cells, geo.n_cells, config, ids=data.ids,
                             backbone=geo.backbone_id, show_progress=show_progress)

    def load(self, folder: Path) -> Refiner:
        return Refiner.load(folder)

    def save(self, value: Refiner, folder: Path) -> None:
        value.save(folder)

    def check(self, geo, refiner: Refiner) -> None:
        if refiner.dim != geo.head.cfg.in_dim:
            raise InputError(f"the refiner holds {refiner.dim}-d embeddings but the model's backbone gives "
                             f"{geo.head.cfg.in_dim}-d ones; " + _FIX)
        if refiner.n_cells != geo.n_cells:
            raise InputError(f"the refiner was built for {refiner.n_cells} cells but the model has "
                             f"{geo.n_cells}; " + _FIX)
        self.check_config(refiner.config, geo.n_cells)
        if refiner.backbone is not None and refiner.backbone != geo.backbone_id:
            raise InputError(f"the refiner was built with backbone {refiner.backbone!r} but the model uses "
                             f"{geo.backbone_id!r}; " + _FIX)

    def describe(self, refiner: Refiner) -> str:
        r = refiner.config
        return (f"{len(refiner):,} gallery locations in {len(refiner.clusters):,} clusters; top {r.top_k} cells, "
                f"T {r.temperature}, max move {r.max_move_km} km, OPTICS ({r.min_samples}, {r.xi}), noise "
                f"{r.noise}, {r.metric}")


#: The refiner artefact (shared by ``refine`` and ``knn``).
REFINER = RefinerArtefact()


@register_placer("refine", "retrieval refinement inside the head's top cells: the nearest training image of the "
                 "best location cluster (PIGEON)", needs=(REFINER,), preference=0, label="pigeon (refined)")
def place_refine(geo, X: np.ndarray, probs: np.ndarray, k: int) -> Placement:
    """The refiner's choice among the head's top K cells, in its order, then the other cells in the head's."""
    refiner: Refiner = geo.artefacts[REFINER.name]
    K = min(refiner.config.top_k, geo.n_cells)
    cands = top_cells(probs, max(k, K))
    rows = np.arange(len(X))[:, None]
    result = refiner.refine(X, cands[:, :K], probs[rows, cands[:, :K]], cell_guess(geo.cells.centroids, cands[:, 0]))
    ranked = np.concatenate([np.take_along_axis(cands[:, :K], result.order, axis=1), cands[:, K:]], axis=1)
    ranked_probs = np.concatenate([np.take_along_axis(result.probs, result.order, axis=1),
                                   np.zeros((len(X), cands.shape[1] - K))], axis=1)
    latlon = cell_guess(geo.cells.centroids, ranked)
    latlon[:, 0] = np.column_stack([result.lat, result.lon])
    return Placement(ranked, latlon, ranked_probs, result.refined)
