"""Splitting oversized cells: OPTICS clusters carved out of the cell with Voronoi regions.

Follows the reference's ``Cell._split_cell`` (OPTICS rounds, noise rules, Voronoi carving, multipolygon
cleanup) with these changes (pigeon-spec section 9):

- OPTICS runs on 3-d points on the sphere (chord distance, i.e. great-circle distance at cell scale) instead
  of raw (lon, lat) degrees, so clusters are not stretched east-west at high latitudes; it uses the fast
  ordering of :mod:`pigeon.cells._optics` (same labels as sklearn);
- a cell with more than ``sample_cap`` points is clustered on a seeded random sample (``min_samples`` scaled
  to the sample); every point then joins the group of its nearest sampled site, which is exactly the
  Voronoi region it lies in, so shapes and memberships agree;
- a "doughnut" split also needs the rest to hold ``min_size`` points; the three-or-more-cluster case assigns
  noise to the nearest cluster centroid and carves by point Voronoi regions (not centroid regions), so every
  point lies in its own cell;
- after the OPTICS rounds, cells still above ``max_size`` are cut at the median of their longer axis
  (``balance=True``), so every cell ends up within bounds unless its points share one location.

Groups become shapes as the union of their sites' Voronoi regions clipped to the parent cell (in a local
equirectangular plane). Each group keeps its part with the most sites (the reference: the largest part) and
other parts go to the sibling they share the longest border with, so cells stay contiguous. Points are then
re-assigned by point-in-polygon, and a child left below ``min_size`` by this cleanup joins its best-touching
sibling (except in the median round, where ``max_size`` comes first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import shapely
from scipy.spatial import cKDTree

from pigeon._progress import progress
from pigeon.cells._optics import optics_xi
from pigeon.cells._spatial import locate_points, plane_scale, scale_x, unit_xyz_km

#: Most points OPTICS sees per cell; larger cells are clustered on a seeded sample of this size.
SAMPLE_CAP = 4000

#: ``grouper(lat, lon, n_total) -> labels`` on the sampled points (-1 = noise), or None for "cannot split".
Grouper = Callable[[np.ndarray, np.ndarray, int], "np.ndarray | None"]


def optics_labels(lat: np.ndarray, lon: np.ndarray, n_total: int, min_samples: int, xi: float) -> np.ndarray | None:
    """OPTICS (xi method) cluster labels on the sphere; ``min_samples`` is scaled from ``n_total`` to the sample."""
    ms = max(2, round(min_samples * len(lat) / n_total))
    if ms >= len(lat):
        return None
    return optics_xi(unit_xyz_km(lat, lon), ms, xi)


def median_labels(lat: np.ndarray, lon: np.ndarray, n_total: int) -> np.ndarray:
    """0/1 halves split at the median of the longer axis of the points in a local plane."""
    xy = np.column_stack([lon * plane_scale(lat), lat])
    axis = int(np.argmax(np.ptp(xy, axis=0)))
    return (xy[:, axis] > np.median(xy[:, axis])).astype(np.int64)


def split_oversized(geoms: Sequence, members: Sequence[np.ndarray], lat: np.ndarray, lon: np.ndarray, *,
                    min_size: int, max_size: int, optics_params: Sequence[tuple[int, float]], seed: int = 0,
                    balance: bool = True, sample_cap: int = SAMPLE_CAP) -> tuple[list, list[np.ndarray], list[int]]:
    """Split every cell with more than ``max_size`` points, round by round, until none changes.

    Args:
        geoms: (k,) cell shapes in (lon, lat) degrees.
        members: k arrays of indices into ``lat``/``lon``: the points of each cell.
        lat, lon: (n,) degrees of all training points.
        min_size, max_size: cell size bounds (points).
        optics_params: OPTICS ``(min_samples, xi)`` rounds, in order.
        seed: seed of the samples drawn from large cells.
        balance: finish with median cuts of cells still above ``max_size``.
        sample_cap: most points OPTICS sees per cell.

    Returns:
        ``geoms``, ``members`` and ``origin`` (the index of the input cell each output cell comes from).
    """
    geoms, members, origin = list(geoms), list(members), list(range(len(geoms)))
    rng = np.random.default_rng(seed)
    rounds: list[tuple[str, Grouper]] = [
        (f"OPTICS min_samples={ms} xi={xi}", partial(optics_labels, min_samples=ms, xi=xi)) for ms, xi in optics_params]
    if balance:
        rounds.append(("median cuts", median_labels))
    for name, grouper in rounds:
        strict = grouper is not median_labels  # median cuts put max_size first: a child may end below min_size
        queue = [i for i, m in enumerate(members) if len(m) > max_size]
        if not queue:
            break
        with progress() as bar:
            task = bar.add_task(f"split cells ({name})", total=len(queue), info="")
            while queue:
                i = queue.pop()
                children = split_cell(geoms[i], members[i], lat, lon, grouper, min_size if strict else 1, max_size,
                                      rng, sample_cap)
                bar.advance(task)
                if children is None:
                    continue
                new = [i, *range(len(geoms), len(geoms) + len(children) - 1)]
                geoms[i], members[i] = children[0]
                for geom, idx in children[1:]:
                    geoms.append(geom)
                    members.append(idx)
                    origin.append(origin[i])
                grown = [j for j in new if len(members[j]) > max_size]
                queue.extend(grown)
                bar.update(task, total=bar.tasks[task].total + len(grown))
    return geoms, members, origin


def split_cell(geom, idx: np.ndarray, lat: np.ndarray, lon: np.ndarray, grouper: Grouper, min_size: int,
               max_size: int, rng: np.random.Generator, sample_cap: int = SAMPLE_CAP) -> list | None:
    """Split one cell into contiguous children; None when ``grouper`` finds no admissible split.

    Returns:
        list of ``(shape, point indices)`` children, at least two, or None.
    """
    la, lo = lat[idx], lon[idx]
    n = len(idx)
    sample = np.sort(rng.choice(n, sample_cap, replace=False)) if n > sample_cap else np.arange(n)
    k = plane_scale(la)
    xy = np.column_stack([lo * k, la])
    sites, first = np.unique(xy[sample], axis=0, return_index=True)
    if len(sites) < 2:
        return None
    raw = grouper(la[sample], lo[sample], n)
    if raw is None:
        return None
    near = cKDTree(sites).query(xy)[1]
    groups = _resolve(np.asarray(raw)[first], near, sites, k, min_size, max_size)
    if groups is None:
        return None
    shapes = _carve(scale_x(geom, k), sites, groups)
    children = [scale_x(s, 1.0 / k) for s in shapes]
    owner = locate_points(la, lo, np.asarray(children, dtype=object), nearest=False)
    outside = owner < 0  # points off the parent's shape (at sea) keep the group of their nearest site
    owner[outside] = groups[near[outside]]
    keep = np.bincount(owner, minlength=len(children)) >= min_size
    if keep.sum() < 2:
        return None
    if not keep.all():  # a child left too small by the cleanup joins the sibling it shares most border with
        shapes = _merge_into_neighbours([shapes[j] for j in np.flatnonzero(keep)],
                                        [shapes[j] for j in np.flatnonzero(~keep)])
        children = [scale_x(s, 1.0 / k) for s in shapes]
        owner = locate_points(la, lo, np.asarray(children, dtype=object))
    return [(children[j], idx[owner == j]) for j in range(len(children))]


def _resolve(labels: np.ndarray, near: np.ndarray, sites: np.ndarray, k: float, min_size: int,
             max_size: int) -> np.ndarray | None:
    """The reference's rules turning cluster labels of the sites into groups 0..g-1, or None.

    Clusters with fewer than ``min_size`` points become noise. One cluster plus noise (the "doughnut")
    splits into the cluster and the rest if the rest holds ``min_size`` to ``max_size`` points (the reference
    only checks ``max_size`` and so leaves tiny rests); two clusters split into the
    first and the rest; with three or more, the noise joins the nearest cluster centroid.
    """
    labels = labels.copy()
    counts = np.bincount(labels[near] + 1)
    small = np.flatnonzero(counts[1:] < min_size)
    labels[np.isin(labels, small)] = -1
    clusters = np.unique(labels[labels >= 0])
    n_noise = int((labels[near] < 0).sum())
    if len(clusters) + (n_noise > 0) < 2:
        return None
    if len(clusters) == 1:
        return None if not min_size <= n_noise <= max_size else (labels >= 0).astype(np.int64)
    if len(clusters) == 2:  # as the reference: carve out the first cluster, the rest stays together
        return (labels == clusters[0]).astype(np.int64)
    site_xyz = unit_xyz_km(sites[:, 1], sites[:, 0] / k)
    point_xyz = site_xyz[near]
    point_labels = labels[near]
    centroids = np.stack([point_xyz[point_labels == c].mean(axis=0) for c in clusters])
    noise = labels < 0
    labels[noise] = clusters[np.argmax(site_xyz[noise] @ centroids.T, axis=1)]
    return np.searchsorted(clusters, labels)


def _carve(parent, sites: np.ndarray, groups: np.ndarray) -> list:
    """Shapes of the groups: unions of their sites' Voronoi regions within ``parent``, each one piece."""
    xmin, ymin, xmax, ymax = np.concatenate([np.minimum(sites.min(0), shapely.bounds(parent)[:2]),
                                             np.maximum(sites.max(0), shapely.bounds(parent)[2:])])
    pad = max(xmax - xmin, ymax - ymin) + 1.0
    extent = shapely.box(xmin - pad, ymin - pad, xmax + pad, ymax + pad)
    regions = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=extent, ordered=True))
    if len(regions) != len(sites):  # GEOS merged near-coincident sites: match regions to sites by location
        regions = regions[locate_points(sites[:, 1], sites[:, 0], regions)]
    shapely.prepare(parent)
    shapes = [shapely.intersection(shapely.coverage_union_all(regions[groups == g]), parent)
              for g in range(groups.max() + 1)]
    return _one_piece_each(shapes, parent, sites)


def _one_piece_each(shapes: list, parent, sites: np.ndarray) -> list:
    """Keep the part of each shape with the most sites; give other parts to the shape they share most border with."""
    main, loose = [], []
    points = shapely.points(sites)
    for g, shape in enumerate(shapes):
        parts = shapely.get_parts(shape)
        parts = parts[shapely.area(parts) > 0]
        if len(parts) == 0:
            main.append(shapely.Polygon())
            continue
        n_sites = np.array([shapely.contains(p, points).sum() for p in parts]) if len(parts) > 1 else np.ones(1)
        big = int(np.lexsort([shapely.area(parts), n_sites])[-1])
        main.append(parts[big])
        loose.extend((g, p) for j, p in enumerate(parts) if j != big)
    return _merge_into_neighbours(main, [p for _, p in loose], owners=[g for g, _ in loose], parent=parent)


def _merge_into_neighbours(main: list, pieces: list, owners: list[int] | None = None, parent=None) -> list:
    """Union each piece into the ``main`` shape it touches most; a piece touching none stays with its owner."""
    extra: list[list] = [[] for _ in main]
    if pieces:
        main_arr = np.asarray(main, dtype=object)
        ref = parent if parent is not None else shapely.union_all(main_arr)
        eps = 1e-4 * float(np.sqrt(max(shapely.area(ref), 1e-12)))
        for j, piece in enumerate(pieces):
            overlap = shapely.area(shapely.intersection(shapely.buffer(piece, eps), main_arr))
            own = owners[j] if owners is not None else -1
            if own >= 0:
                overlap[own] = 0.0
            target = int(np.argmax(overlap)) if overlap.max() > 0 else own
            if target < 0:  # no owner and no neighbour: the nearest shape
                target = int(np.argmin(shapely.distance(piece, main_arr)))
            extra[target].append(piece)
    return [shapely.union_all([m, *e]) if e else m for m, e in zip(main, extra)]
