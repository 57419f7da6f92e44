"""Retrieval refinement over location clusters inside the top geocells (PIGEON's third contribution).

>>> from pigeon.refine import RefineConfig, Refiner
>>> refiner = Refiner.build(X, coords, cells, n_cells, RefineConfig(top_k=5, temperature=1.6))
>>> refiner.refine(Q, candidates, probs, head_guess).cell

A model's refiner is built from its training manifest by :func:`pigeon.model.build_refiner` (``pigeon refine
build``); this package knows nothing of models (``pigeon.model`` imports it, never the other way round).

Inside each cell the training locations are clustered with OPTICS on great-circle distances; a query scores each
of the head's top-K cells by its most similar cluster, the cell with the highest ``p_cell * softmax(score / T)``
wins, and the guess is the location of the *nearest* member of that cell's best cluster.

Large galleries: :func:`build_index` builds a FAISS index (e.g. ``IVF4096,PQ64``) batch by batch from an array, a
memory map or an embeddings store, :func:`read_index` memory-maps a saved one, :func:`recall_at_1` measures it
against exact search.
"""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon.refine._config": ("METRICS", "NOISE_POLICIES", "SEARCHES", "RefineConfig"),
    "pigeon.refine._index": ("build_index", "read_index", "recall_at_1", "write_index"),
    "pigeon.refine._refiner": ("Refinement", "Refiner"),
})
__all__ = sorted(_EXPORTS)
# lazy: RefineConfig (help texts) imports without FAISS or pandas; the refiner when it is used
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
