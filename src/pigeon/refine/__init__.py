"""Retrieval refinement over location clusters inside the top geocells (PIGEON's third contribution).

>>> from pigeon.refine import RefineConfig, build_refiner
>>> geo.set_refiner(build_refiner(geo, "train.parquet", "emb/", RefineConfig(top_k=5, temperature=1.6)))
>>> geo.predict("photo.jpg")[0].refined
True

Inside each cell the training locations are clustered with OPTICS on great-circle distances; a query scores each
of the head's top-K cells by its most similar cluster, the cell with the highest ``p_cell * softmax(score / T)``
wins, and the guess is the location of the *nearest* member of that cell's best cluster.

Large galleries: :func:`build_index` builds a FAISS index (e.g. ``IVF4096,PQ64``) batch by batch from an array, a
memory map or an embeddings store, :func:`read_index` memory-maps a saved one, :func:`recall_at_1` measures it
against exact search.
"""

from pigeon._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "_build": ("build_refiner",),
    "_config": ("METRICS", "NOISE_POLICIES", "SEARCHES", "RefineConfig"),
    "_index": ("build_index", "read_index", "recall_at_1", "write_index"),
    "_refiner": ("Refinement", "Refiner"),
})
