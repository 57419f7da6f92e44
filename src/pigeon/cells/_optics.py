"""OPTICS ordering written for many small problems: vectorised numpy steps, no per-point sklearn calls.

``sklearn.cluster.OPTICS`` spends ~1 ms per point in Python overhead, which made splitting 100k points take
minutes. :func:`optics_xi` computes the same ordering, reachability and predecessors (the points are 3-d,
so each step is one vectorised distance to all points) and hands them to sklearn's own xi extraction
(:func:`sklearn.cluster.cluster_optics_xi`), so labels match ``OPTICS(min_samples, xi)`` with the default
``max_eps=inf``.

Each step does a handful of numpy calls on preallocated arrays: the distances from the chosen point come from a
precomputed matrix for small problems (most cells) and from the coordinate columns otherwise, both computed
exactly as ``sqrt(((x - x[p]) ** 2).sum(axis=1))``, so the graph is bit for bit the one of the plain loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

#: Up to this many points the pairwise distances are precomputed (2 MB); beyond, each row is computed when needed.
MATRIX_MAX_POINTS = 512
_BIG = np.finfo(np.float64).max


def optics_graph(x: np.ndarray, min_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OPTICS reachability graph of points ``x`` (n, d) with Euclidean distance.

    Returns:
        ``reachability`` (n,) (inf for the first point of each component), ``predecessor`` (n,) int64 (-1 for
        none) and ``ordering`` (n,) int64, as ``sklearn.cluster.compute_optics_graph`` with ``max_eps=inf``.
    """
    n = len(x)
    core = cKDTree(x).query(x, k=min_samples)[0][:, -1]
    distances = _distance_rows(x)
    key = np.full(n, _BIG)  # reachability of the points not yet ordered (inf as the largest float); inf once ordered
    todo = np.ones(n, dtype=bool)
    reach = np.full(n, np.inf)
    pred = np.full(n, -1, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    dist, better = np.empty(n), np.empty(n, dtype=bool)
    for i in range(n):
        # the unprocessed point with the smallest reachability, the lowest index among ties
        p = int(np.argmin(key))
        order[i] = p
        if key[p] < _BIG:
            reach[p] = key[p]
        key[p] = np.inf
        todo[p] = False
        np.maximum(distances(p), core[p], out=dist)
        np.less(dist, key, out=better)
        better &= todo
        np.copyto(key, dist, where=better)
        np.copyto(pred, p, where=better)
    return reach, pred, order


def _distance_rows(x: np.ndarray) -> Callable[[int], np.ndarray]:
    """``row(p)``: the Euclidean distances from point ``p`` to all points, as ``sqrt(((x - x[p]) ** 2).sum(1))``.

    numpy sums fewer than 8 terms in order, so adding the squared coordinate differences column by column gives
    the same bits. The returned row may be a buffer reused by the next call.
    """
    columns = [np.ascontiguousarray(c) for c in np.asarray(x, dtype=np.float64).T]
    if len(x) <= MATRIX_MAX_POINTS:
        matrix = np.zeros((len(x), len(x)))
        for c in columns:
            diff = np.subtract.outer(c, c)
            matrix += np.multiply(diff, diff, out=diff)
        np.sqrt(matrix, out=matrix)
        return matrix.__getitem__
    row, diff = np.empty(len(x)), np.empty(len(x))

    def distances(p: int) -> np.ndarray:
        row.fill(0.0)
        for c in columns:
            np.subtract(c, c[p], out=diff)
            np.add(row, np.multiply(diff, diff, out=diff), out=row)
        return np.sqrt(row, out=row)

    return distances


def optics_xi(x: np.ndarray, min_samples: int, xi: float) -> np.ndarray:
    """OPTICS cluster labels (xi method, ``min_cluster_size = min_samples``); -1 is noise."""
    from sklearn import config_context
    from sklearn.cluster import cluster_optics_xi

    reach, pred, order = optics_graph(x, min_samples)
    # the arguments are ours, so sklearn's parameter validation (a third of the extraction time) is skipped
    with np.errstate(divide="ignore", invalid="ignore"), config_context(skip_parameter_validation=True):
        labels, _ = cluster_optics_xi(reachability=reach, predecessor=pred, ordering=order,
                                      min_samples=min_samples, xi=xi)
    return labels
