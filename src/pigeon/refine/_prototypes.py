"""Location clusters ("prototypes") inside each geocell: OPTICS on great-circle distances.

The gallery (the training locations) is reordered so that every cluster's members are contiguous, clusters are
grouped by cell, and rows without a cluster (OPTICS noise under the ``"drop"`` policy) come last. Two offset
arrays then describe everything: ``cell_ptr`` (clusters of cell ``c`` are ``cell_ptr[c]:cell_ptr[c + 1]``) and
``proto_ptr`` (members of cluster ``p`` are gallery rows ``proto_ptr[p]:proto_ptr[p + 1]``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pigeon._progress import track
from pigeon.geo import spherical_means


@dataclass
class Prototypes:
    """The clusters of a gallery.

    Attributes:
        order: (N,) gallery row of each position: members of cluster 0, cluster 1, ..., then unclustered rows.
        cell_ptr: (C + 1,) cluster offsets per cell.
        proto_ptr: (P + 1,) member offsets (positions in ``order``) per cluster.
        proto_cell: (P,) cell of each cluster.
        proto_latlon: (P, 2) spherical mean location of each cluster's members.
    """

    order: np.ndarray
    cell_ptr: np.ndarray
    proto_ptr: np.ndarray
    proto_cell: np.ndarray
    proto_latlon: np.ndarray

    @property
    def n_prototypes(self) -> int:
        return len(self.proto_cell)

    @property
    def n_members(self) -> int:
        """Gallery rows that belong to a cluster."""
        return int(self.proto_ptr[-1])


def cluster_locations(lat: np.ndarray, lon: np.ndarray, min_samples: int, xi: float) -> np.ndarray:
    """OPTICS labels (-1 = noise) of points on the sphere (haversine metric); fewer than ``min_samples``
    points are one cluster."""
    n = len(lat)
    if n < max(min_samples, 2):
        return np.zeros(n, np.int64)
    from sklearn.cluster import OPTICS

    points = np.radians(np.column_stack([lat, lon]))
    with warnings.catch_warnings():  # duplicate locations give infinite reachability warnings; harmless
        warnings.simplefilter("ignore")
        labels = OPTICS(min_samples=min_samples, xi=xi, metric="haversine", algorithm="ball_tree").fit(points).labels_
    return labels.astype(np.int64)


def build_prototypes(coords: np.ndarray, cells: np.ndarray, n_cells: int, *, min_samples: int, xi: float,
                     noise: str = "singletons", show_progress: bool = True) -> Prototypes:
    """Cluster the gallery's locations inside each cell.

    Args:
        coords: (N, 2) gallery (lat, lon) degrees.
        cells: (N,) cell of each gallery row, in ``[0, n_cells)``.
        n_cells: number of cells (cells without gallery rows get no cluster).
        min_samples, xi: OPTICS parameters.
        noise: ``"singletons"`` (each noise point its own cluster) or ``"drop"`` (noise points get none).
        show_progress: show a progress bar over the cells.
    """
    cells = np.asarray(cells, np.int64)
    by_cell = np.argsort(cells, kind="stable")
    bounds = np.searchsorted(cells[by_cell], np.arange(n_cells + 1))
    members: list[np.ndarray] = []   # gallery rows of each cluster, in cluster order
    proto_cell: list[int] = []
    dropped: list[np.ndarray] = []
    occupied = [c for c in range(n_cells) if bounds[c + 1] > bounds[c]]
    items = track(occupied, "clustering locations per cell") if show_progress else occupied
    for c in items:
        rows = by_cell[bounds[c]:bounds[c + 1]]
        labels = cluster_locations(coords[rows, 0], coords[rows, 1], min_samples, xi)
        for label in np.unique(labels[labels >= 0]):
            members.append(rows[labels == label])
        noise_rows = rows[labels < 0]
        if noise == "singletons":
            members.extend(noise_rows[:, None])
        else:
            dropped.append(noise_rows)
        proto_cell.extend([c] * (len(members) - len(proto_cell)))
    proto_cell_arr = np.asarray(proto_cell, np.int64)
    sizes = np.array([len(m) for m in members], np.int64)
    order = np.concatenate(members + dropped) if members or dropped else np.zeros(0, np.int64)
    proto_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    latlon = np.zeros((len(sizes), 2))
    if len(sizes):  # spherical mean of each cluster's members
        lat, lon = coords[order[:proto_ptr[-1]]].T
        latlon = np.column_stack(spherical_means(lat, lon, np.repeat(np.arange(len(sizes)), sizes), len(sizes)))
    return Prototypes(
        order=order.astype(np.int64),
        cell_ptr=np.searchsorted(proto_cell_arr, np.arange(n_cells + 1)).astype(np.int64),
        proto_ptr=proto_ptr,
        proto_cell=proto_cell_arr,
        proto_latlon=latlon,
    )
