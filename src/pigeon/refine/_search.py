"""Similarity search for the refiner, batched over queries (no Python loop per query).

Two building blocks:

* :func:`best_in_ranges`: for each query, the most similar row of a contiguous range of an embedding matrix
  (used for "best cluster of a cell" and "nearest member of a cluster"); one gather + row-wise product.
* :func:`cell_scores_exact` / :func:`index_cell_scores`: the score of each candidate cell (its best cluster) for
  each query: a matrix product against the clusters of all the batch's candidate cells, or a FAISS index over all
  clusters (:mod:`pigeon.refine._index`: exact ``Flat``, or approximate IVF / HNSW / IVF-PQ for large galleries).
"""

from __future__ import annotations

import numpy as np


#: Elements (rows x dims) gathered or multiplied per chunk: bounds the memory of one step (~64 MB float32).
CHUNK_ELEMENTS = 1 << 24


def prepare(X: np.ndarray, metric: str) -> np.ndarray:
    """Float32 vectors ready for ``metric``: unit length for cosine, unchanged for Euclidean."""
    X = np.asarray(X, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=-1, keepdims=True)
        X = X / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(X)


def _scores(q: np.ndarray, e: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise scores of paired rows ``q[i]``, ``e[i]`` (higher is more similar)."""
    if metric == "cosine":
        return np.einsum("ij,ij->i", q, e)
    diff = q - e
    return -np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _matrix_scores(q: np.ndarray, e: np.ndarray, metric: str) -> np.ndarray:
    """All-pairs scores ``(len(q), len(e))``."""
    dots = q @ e.T
    if metric == "cosine":
        return dots
    sq = (q * q).sum(1)[:, None] + (e * e).sum(1)[None, :] - 2 * dots
    return -np.sqrt(np.maximum(sq, 0))


def _segment_argmax(scores: np.ndarray, starts: np.ndarray, lengths: np.ndarray, axis: int = -1):
    """Max and index of the max of consecutive non-empty segments along ``axis`` (first one on ties)."""
    best = np.maximum.reduceat(scores, starts, axis=axis)
    index = np.arange(scores.shape[axis])
    shape = [1] * scores.ndim
    shape[axis] = -1
    spread = np.repeat(best, lengths, axis=axis)
    first = np.where(scores == spread, -index.reshape(shape), -np.iinfo(np.int64).max)
    return best, -np.maximum.reduceat(first, starts, axis=axis)


def _ragged(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n), vectorised."""
    total = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.repeat(starts - offsets, lengths) + np.arange(total)


def best_in_ranges(Q: np.ndarray, emb, starts: np.ndarray, stops: np.ndarray,
                   metric: str) -> tuple[np.ndarray, np.ndarray]:
    """For each query ``i``, the row of ``emb[starts[i]:stops[i]]`` most similar to ``Q[i]``.

    Args:
        Q: (B, D) prepared queries.
        emb: (M, D) prepared rows (an array or a memory map; rows are gathered, cast to float32).
        starts, stops: (B,) the range of each query.
        metric: ``"cosine"`` or ``"euclidean"``.

    Returns:
        ``(index, score)``, each (B,): the chosen row (-1 for an empty range) and its score (-inf if empty).
    """
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    lengths = np.maximum(stops - starts, 0)
    index = np.full(len(Q), -1, np.int64)
    score = np.full(len(Q), -np.inf, np.float32)
    dim = Q.shape[1]
    done = 0
    while done < len(Q):  # chunks of queries whose ranges together fit the element budget
        cum = np.cumsum(lengths[done:]) * dim
        stop = done + max(1, int(np.searchsorted(cum, CHUNK_ELEMENTS, side="right")))
        part = np.arange(done, stop)
        part = part[lengths[part] > 0]
        done = stop
        if not len(part):
            continue
        rows = _ragged(starts[part], lengths[part])
        owner = np.repeat(np.arange(len(part)), lengths[part])
        s = _scores(Q[part][owner], np.asarray(emb[rows], dtype=np.float32), metric)
        seg = np.concatenate([[0], np.cumsum(lengths[part])[:-1]])
        best, at = _segment_argmax(s, seg, lengths[part])
        score[part], index[part] = best, rows[at]
    return index, score


def cell_scores_exact(Q: np.ndarray, candidates: np.ndarray, cell_ptr: np.ndarray, proto_emb: np.ndarray,
                      metric: str) -> np.ndarray:
    """Score of every candidate cell: the similarity of its best cluster (-inf for a cell without clusters).

    For a chunk of queries, one matrix product against the clusters of all their candidate cells, then a
    segment maximum per cell.

    Args:
        Q: (B, D) prepared queries.
        candidates: (B, K) cell ids.
        cell_ptr: (C + 1,) cluster offsets per cell.
        proto_emb: (P, D) prepared cluster embeddings, grouped by cell.
    """
    B, K = candidates.shape
    out = np.full((B, K), -np.inf, np.float32)
    counts = (cell_ptr[1:] - cell_ptr[:-1])
    # queries per chunk so that chunk x (clusters of the chunk's cells) stays in budget
    per_query = max(1, int(counts[candidates].sum(1).max(initial=1)))
    step = max(1, CHUNK_ELEMENTS // max(1, per_query * K))
    for lo in range(0, B, step):
        cand = candidates[lo:lo + step]
        cells = np.unique(cand)
        cells = cells[counts[cells] > 0]
        if not len(cells):
            continue
        rows = _ragged(cell_ptr[cells], counts[cells])
        s = _matrix_scores(Q[lo:lo + step], proto_emb[rows], metric)
        seg = np.concatenate([[0], np.cumsum(counts[cells])[:-1]])
        best = np.maximum.reduceat(s, seg, axis=1)            # (b, n unique cells with clusters)
        col = np.searchsorted(cells, cand)                     # candidate -> column
        found = (col < len(cells)) & (cells[np.minimum(col, len(cells) - 1)] == cand)
        vals = np.take_along_axis(best, np.minimum(col, len(cells) - 1), axis=1)
        out[lo:lo + step] = np.where(found, vals, -np.inf)
    return out


def index_cell_scores(scores: np.ndarray, ids: np.ndarray, candidates: np.ndarray, proto_cell: np.ndarray,
                      has_clusters: np.ndarray) -> np.ndarray:
    """Candidate-cell scores from the clusters an index retrieved for each query (``scores``, ``ids``: (B, n)),
    grouped by cell.

    A candidate cell none of whose clusters is retrieved gets the score of the least similar retrieved cluster
    (its best cluster can be no more similar than that); a cell without clusters gets -inf.
    """
    cells = np.where(ids >= 0, proto_cell[np.maximum(ids, 0)], -1)
    match = cells[:, None, :] == candidates[:, :, None]             # (B, K, neighbours)
    best = np.where(match, scores[:, None, :], -np.inf).max(axis=2)
    floor = np.where(np.isfinite(scores), scores, np.inf).min(axis=1, keepdims=True)
    best = np.where(np.isfinite(best), best, floor)
    return np.where(has_clusters[candidates], best, -np.inf).astype(np.float32)
