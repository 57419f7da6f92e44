"""FAISS indexes over large galleries: built batch by batch, memory-mapped when read, re-ranked exactly, measured.

* :func:`build_index` trains an index on a seeded sample of rows, then adds the rows batch by batch, from an array or
  memory map (the refiner's ``embeddings.safetensors``) or straight from an :class:`pigeon.embed.Embeddings` store
  (:meth:`~pigeon.embed.Embeddings.iter_batches`, one shard at a time): the whole gallery is never in memory.
  The same rows and seed give the same index from either source.
* :func:`read_index` memory-maps a saved index: the inverted lists of IVF indexes (``IVF...,Flat``, ``IVF...,PQ``,
  ``IVF...,SQ``) and the stored vectors of ``Flat`` and ``HNSW`` indexes stay on disk and are paged in on use (the
  HNSW graph itself, about ``8 x M`` bytes a vector, is read into memory).
* :func:`search` returns the nearest rows; for an index with lossy codes (PQ, SQ) it can re-score the ``rerank``
  best candidates exactly against the (memory-mapped) vectors, which recovers most of the recall that PQ loses.
* :func:`recall_at_1` measures an index against exact search (leave-one-out over a sample of its own rows).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pigeon._progress import progress
from pigeon.errors import InputError, MissingDependencyError
from pigeon.refine._search import _scores, prepare

#: Rows added to an index per call (and read per batch from a store).
ADD_BATCH = 65_536
#: Training rows a trained index gets at least (a seeded sample), and per inverted list at least.
TRAIN_SIZE, TRAIN_PER_LIST = 256 * 1024, 40


def import_faiss():
    """The ``faiss`` module, or a one-line error naming the install."""
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("faiss-cpu", purpose="FAISS search") from None
    return faiss


class _Rows:
    """The vectors an index is built from, read in batches: an array / memory map, or an embeddings store."""

    def __init__(self, vectors, metric: str, ids=None, batch_size: int = ADD_BATCH) -> None:
        self.store = hasattr(vectors, "iter_batches")
        self.vectors, self.metric, self.batch_size = vectors, metric, batch_size
        if self.store:
            self.ids = None if ids is None else [str(i) for i in ids]
            self.n = len(vectors) if ids is None else len(self.ids)
            self.dim = vectors.dim
        else:
            if ids is not None:
                raise InputError("ids select rows of an embeddings store; slice the array instead")
            self.n, self.dim = vectors.shape

    def batches(self) -> Iterator[np.ndarray]:
        """float32 batches in row order, ready for the metric (store rows are prepared here; arrays already are)."""
        if self.store:
            for _, x in self.vectors.iter_batches(self.ids, batch_size=self.batch_size):
                yield prepare(x, self.metric)
            return
        for lo in range(0, self.n, self.batch_size):
            yield np.asarray(self.vectors[lo:lo + self.batch_size], np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The sorted ``rows`` as float32 (an array gathers them; a store is read through once)."""
        if not self.store:
            return np.asarray(self.vectors[rows], np.float32)
        out, done, start = [], 0, 0
        for x in self.batches():
            stop = start + len(x)
            hi = np.searchsorted(rows, stop)
            out.append(x[rows[done:hi] - start])
            done, start = hi, stop
            if done == len(rows):
                break
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def build_index(vectors, metric: str, factory: str, nprobe: int, *, ids=None, train_size: int = TRAIN_SIZE,
                seed: int = 0, show_progress: bool = False):
    """A FAISS index over a gallery, trained on a seeded sample of its rows and filled batch by batch.

    Args:
        vectors: ``(n, D)`` rows ready for the metric (unit length for cosine): an array or a memory map; or an
            :class:`pigeon.embed.Embeddings` store, read shard by shard (its view-averaged vectors, normalised here
            for cosine), so the gallery is never held in memory.
        metric: ``"cosine"`` (inner product) or ``"euclidean"`` (L2).
        factory: an ``index_factory`` string (``"Flat"``, ``"IVF1024,Flat"``, ``"HNSW32"``, ``"IVF4096,PQ64"``).
        nprobe: inverted lists to visit (IVF); HNSW searches ``4 * nprobe`` deep.
        ids: with a store, the rows to index in this order (default: every row, in store order).
        train_size: rows of the training sample, at least 40 per inverted list (FAISS's minimum).
        seed: seeds the sample; the same rows and seed give the same index from an array or a store.
        show_progress: a progress bar over the rows added.
    """
    faiss = import_faiss()
    rows = _Rows(vectors, metric, ids)
    if rows.n == 0:
        raise InputError("cannot index an empty gallery; check the embeddings")
    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    try:
        index = faiss.index_factory(rows.dim, factory, kind)
    except RuntimeError as exc:
        raise InputError(f"FAISS index type {factory!r} is not valid ({_reason(exc)}); use e.g. "
                         "'Flat', 'IVF1024,Flat', 'HNSW32' or 'IVF4096,PQ64'") from None
    if not index.is_trained:
        ivf = faiss.try_extract_index_ivf(index)
        if hasattr(faiss.downcast_index(ivf), "do_polysemous_training"):  # Hamming ranking: unused, slow to train
            faiss.downcast_index(ivf).do_polysemous_training = False
        wanted = max(train_size, TRAIN_PER_LIST * ivf.nlist if ivf is not None else 0)
        sample = np.sort(np.random.default_rng(seed).choice(rows.n, min(rows.n, wanted), replace=False))
        try:
            index.train(rows.take(sample))
        except RuntimeError as exc:  # e.g. fewer rows than centroids
            raise InputError(f"cannot train the FAISS index {factory!r} on a gallery of {rows.n} rows "
                             f"({_reason(exc)}); use 'Flat' or fewer lists for a small gallery") from None
    bar = progress() if show_progress else contextlib.nullcontext()
    with bar:
        task = bar.add_task(f"indexing ({factory})", total=rows.n, info="") if show_progress else None
        for x in rows.batches():
            index.add(x)
            if task is not None:
                bar.update(task, advance=len(x))
    set_search_depth(index, nprobe)
    return index


def _reason(exc: Exception) -> str:
    """The informative line of a FAISS exception (its first line names the C++ function)."""
    text = str(exc).strip()
    if "Error:" in text:
        text = text.split("Error:", 1)[1]
    elif text.startswith("Error in ") and ": " in text.splitlines()[0]:
        text = text.splitlines()[0].rsplit(": ", 1)[1]  # "Error in <function> at <file>:<line>: <message>"
    return (text.strip().splitlines() or [type(exc).__name__])[0][:160]


def set_search_depth(index, nprobe: int) -> None:
    """Visit ``nprobe`` inverted lists (IVF) or search ``4 * nprobe`` deep (HNSW); exact indexes ignore it."""
    faiss = import_faiss()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = nprobe
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = 4 * nprobe


def write_index(index, path: str | os.PathLike) -> Path:
    """Save an index atomically (what :func:`read_index` memory-maps)."""
    from pigeon._io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        import_faiss().write_index(index, str(tmp))
    return path


def read_index(path: str | os.PathLike, nprobe: int | None = None):
    """Open a saved index memory-mapped: IVF inverted lists with ``IO_FLAG_MMAP``, the vectors of ``Flat`` and
    ``HNSW`` indexes with ``IO_FLAG_MMAP_IFC``; other types are read into memory."""
    faiss = import_faiss()
    flags = [faiss.IO_FLAG_MMAP | getattr(faiss, "IO_FLAG_MMAP_IFC", 0), faiss.IO_FLAG_MMAP, 0]
    for flag in flags:  # IVF refuses the first (its lists map with IO_FLAG_MMAP alone)
        try:
            index = faiss.read_index(str(path), flag)
            break
        except RuntimeError as exc:
            error = exc
    else:
        raise InputError(f"{path} is not a readable FAISS index ({_reason(error)}); "
                         "rebuild it") from None
    if nprobe is not None:
        set_search_depth(index, nprobe)
    return index


def is_memory_mapped(index) -> bool:
    """Whether an IVF index's inverted lists are memory-mapped (False for other index types)."""
    faiss = import_faiss()
    ivf = faiss.try_extract_index_ivf(index)
    return ivf is not None and isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)


def is_lossy(index) -> bool:
    """Whether the index compares compressed codes (PQ, SQ...) rather than the vectors themselves."""
    faiss = import_faiss()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return not isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
    index = faiss.downcast_index(index)
    storage = getattr(index, "storage", None)
    if storage is not None:
        index = faiss.downcast_index(storage)
    return not isinstance(index, faiss.IndexFlat)


def search(index, Q: np.ndarray, k: int, metric: str, *, exact=None, rerank: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)`` (B, k) of the ``k`` most similar rows: similarity for cosine, minus the distance for L2
    (-inf and -1 where the index returned fewer than ``k``).

    Args:
        exact: the indexed rows (array or memory map, prepared for the metric). With a lossy index, the best
            ``max(k, rerank)`` candidates are re-scored against them and the ``k`` best kept, with exact scores.
        rerank: candidates to re-score (0: none).
    """
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    rescore = exact is not None and rerank > 0 and is_lossy(index)
    fetch = max(k, rerank) if rescore else k
    dist, ids = index.search(Q, min(fetch, max(index.ntotal, 1)))
    ids = ids.astype(np.int64)
    if rescore:
        found = ids >= 0
        owner = np.nonzero(found)[0]
        wanted = ids[found]
        by_row = np.argsort(wanted, kind="stable")  # read the (memory-mapped) rows in file order
        vectors = np.empty((len(wanted), Q.shape[1]), np.float32)
        vectors[by_row] = exact[wanted[by_row]]
        scores = np.full(ids.shape, -np.inf, np.float32)
        scores[found] = _scores(Q[owner], vectors, metric)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    else:
        scores = dist if metric == "cosine" else -np.sqrt(np.maximum(dist, 0))
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    if ids.shape[1] < k:  # a gallery smaller than k
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return scores, ids


def recall_at_1(index, vectors, metric: str, *, queries: int = 500, seed: int = 0, exact=None, rerank: int = 0,
                ids=None) -> float:
    """Share of sampled rows whose nearest *other* row the index finds first, as exact search does.

    Leave-one-out over a seeded sample of the indexed rows (array, memory map or store, as for :func:`build_index`),
    so no held-out queries are needed; exact search reads the rows batch by batch. ``exact`` and ``rerank`` are
    passed to :func:`search`.
    """
    rows = _Rows(vectors, metric, ids)
    if rows.n < 2:
        return 1.0
    sample = np.sort(np.random.default_rng(seed).choice(rows.n, min(rows.n, queries), replace=False))
    Q = rows.take(sample)
    best = np.full(len(Q), -np.inf)
    truth = np.full(len(Q), -1, np.int64)
    start = 0
    for x in rows.batches():  # exact nearest other row, batch by batch
        s = _all_scores(Q, x, metric)
        mine = (sample >= start) & (sample < start + len(x))
        s[np.flatnonzero(mine), sample[mine] - start] = -np.inf  # not itself
        j = s.argmax(1)
        better = s[np.arange(len(Q)), j] > best
        best[better], truth[better] = s[np.arange(len(Q)), j][better], start + j[better]
        start += len(x)
    _, found = search(index, Q, 2, metric, exact=exact, rerank=rerank)
    first = np.where(found[:, 0] == sample, found[:, 1], found[:, 0])
    return float((first == truth).mean())


def _all_scores(Q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    dots = Q @ x.T
    if metric == "cosine":
        return dots
    return -np.sqrt(np.maximum((Q * Q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * dots, 0))


def auto_factory(n: int, dim: int, flat_max: int, pq_min: int) -> str:
    """The index for ``n`` vectors of size ``dim``: exact ``Flat`` up to ``flat_max``; an inverted file with
    ``4 sqrt(n)`` lists storing the vectors up to ``pq_min``; beyond, the same with product-quantised codes of
    ``dim / 16`` bytes (64 for 1024-d), which keeps a 10M-vector index near 0.7 GB."""
    if n <= flat_max:
        return "Flat"
    lists = max(1, int(4 * math.sqrt(n)))
    if n <= pq_min:
        return f"IVF{lists},Flat"
    return f"IVF{lists},PQ{_pq_bytes(dim)}"


def _pq_bytes(dim: int) -> int:
    """The largest divisor of ``dim`` not above ``dim / 16`` (at least 1): PQ needs the dimension split evenly."""
    return max(m for m in range(1, max(1, dim // 16) + 1) if dim % m == 0)


def describe(index) -> dict[str, Any]:
    """Type, size and memory mapping of an index (for logs and provenance)."""
    faiss = import_faiss()
    ivf = faiss.try_extract_index_ivf(index)
    return {"type": type(faiss.downcast_index(index)).__name__, "ntotal": int(index.ntotal),
            "nlist": int(ivf.nlist) if ivf is not None else None, "memory_mapped": is_memory_mapped(index),
            "lossy": is_lossy(index)}
