"""Splitting oversized cells: OPTICS clusters carved out of the cell with Voronoi regions (the paper's rules).

Follows the reference's ``Cell._split_cell`` (pigeon-spec section 1.2). For each OPTICS ``(min_samples, xi)``
round, every cell above ``max_size`` is split, and its children are split again while above ``max_size``:

- clusters with fewer than ``min_size`` points become noise. A split needs two groups of at least ``min_size``
  points, where the noise counts as a group;
- **doughnut** (one cluster, and noise of ``min_size`` points or more): no split if the noise holds more than
  ``max_size`` points; otherwise the cluster is carved out as the union of its points' Voronoi regions with
  the holes filled, and the rest (the ring around it) stays one cell;
- **two clusters**: the noise joins the nearest cluster centroid, then the first cluster is carved out as in
  the doughnut case;
- **three or more clusters**: the noise joins the nearest cluster centroid (centroids of the clusters' own
  points), and each cluster becomes the Voronoi region of its centroid;
- **dirty splits**: each child keeps its largest part; every other part goes to the sibling it shares the
  longest border with; parts that border no sibling (islands of the parent) stay.

Deliberate changes (pigeon-spec section 9), none of which changes which rule applies:

- OPTICS runs on 3-d points on the sphere (chord distance, i.e. great-circle distance at cell scale) instead
  of raw (lon, lat) degrees, with the fast ordering of :mod:`pigeon.cells._optics` (same labels as sklearn);
- shapes are built in a local equirectangular plane around the cell, with the cell unwrapped across the
  antimeridian, and wrapped back to ``[-180, 180]`` afterwards;
- a cell with more than ``sample_cap`` points is clustered on a random sample (``min_samples`` scaled to the
  sample), drawn from a generator seeded by ``seed`` and the cell's own points; every point then joins the group
  of its nearest sampled site;
- the points of a child are those inside its shape (the reference keeps a cluster's points even where they
  lie outside its centroid's region), so shapes and labels agree; points off the parent's land keep the
  group of the region they lie in. A child left without points is merged into the sibling it borders most,
  and a split that would leave a child without land (a cluster out at sea) is not made.

Optional (``balance=True``, off by default; not in the paper): after the OPTICS rounds, cells still above
``max_size`` are cut in two by a straight line at the median of their longer axis until none is
(:func:`median_split`).

Splits are independent (a split sees only its cell's shape and points), so :func:`split_oversized` runs them in
waves that a :class:`pigeon.cells._parallel.CellMapper` may spread over processes or a Ray cluster, with the same
cells whatever the number of workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import shapely
from scipy.spatial import cKDTree

from pigeon._progress import progress
from pigeon.cells._optics import optics_xi
from pigeon.cells._parallel import CellMapper
from pigeon.cells._spatial import locate_points, plane_scale, scale_x, unit_xyz_km
from pigeon.geo import spherical_mean, xyz_to_latlon
from pigeon.geography._topology import (
    border_graph, contiguous_groups, polygon_parts, polygonal, unwrap_geometry, unwrap_lon, wrap_geometry,
)

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


def split_oversized(geoms: Sequence, members: Sequence[np.ndarray], lat: np.ndarray, lon: np.ndarray, *,
                    min_size: int, max_size: int, optics_params: Sequence[tuple[int, float]], seed: int = 0,
                    balance: bool = False, sample_cap: int = SAMPLE_CAP,
                    mapper: CellMapper | None = None) -> tuple[list, list[np.ndarray], list[int]]:
    """Split every cell with more than ``max_size`` points, round by round, until none changes.

    Each round goes in waves: all cells above ``max_size`` are split (independently, so ``mapper`` may spread
    them over processes), then their children above ``max_size`` form the next wave. The result depends neither
    on the order the splits finish in nor on the number of workers.

    Args:
        geoms: (k,) cell shapes in (lon, lat) degrees.
        members: k arrays of indices into ``lat``/``lon``: the points of each cell.
        lat, lon: (n,) degrees of all training points.
        min_size, max_size: cell size bounds (points).
        optics_params: OPTICS ``(min_samples, xi)`` rounds, in order.
        seed: seed of the samples drawn from large cells (with each cell's own points, see :func:`split_cell`).
        balance: finish with median cuts of cells still above ``max_size`` (not in the paper).
        sample_cap: most points OPTICS sees per cell.
        mapper: runs the splits of a wave (default: serially in this process).

    Returns:
        ``geoms``, ``members`` and ``origin`` (the index of the input cell each output cell comes from).
    """
    geoms, members, origin = list(geoms), list(members), list(range(len(geoms)))
    rounds: list[tuple[str, Callable]] = [
        (f"OPTICS min_samples={ms} xi={xi}",
         partial(split_cell, grouper=partial(optics_labels, min_samples=ms, xi=xi), min_size=min_size,
                 max_size=max_size, seed=seed, sample_cap=sample_cap)) for ms, xi in optics_params]
    if balance:
        rounds.append(("median cuts", median_split))
    mapper = mapper or CellMapper()
    for name, splitter in rounds:
        wave = [i for i, m in enumerate(members) if len(m) > max_size]
        if not wave:
            break
        with progress() as bar:
            task = bar.add_task(f"split cells ({name})", total=len(wave), info="")
            while wave:
                cells, wave = wave, []
                results = mapper.map(run_splitter, partial(_task, splitter, geoms, members, lat, lon, cells),
                                     len(cells), [split_cost(len(members[i]), sample_cap) for i in cells],
                                     done=partial(bar.advance, task))
                for i, children in zip(cells, results):
                    if children is None:
                        continue
                    idx = members[i]
                    new = [i, *range(len(geoms), len(geoms) + len(children) - 1)]
                    geoms[i], members[i] = children[0][0], idx[children[0][1]]
                    for geom, local in children[1:]:
                        geoms.append(geom)
                        members.append(idx[local])
                        origin.append(origin[i])
                    wave += [j for j in new if len(members[j]) > max_size]
                bar.update(task, total=bar.tasks[task].total + len(wave))
    return geoms, members, origin


def split_cost(n: int, sample_cap: int = SAMPLE_CAP) -> float:
    """Rough relative time of splitting a cell of ``n`` points: a fixed part (shapes, a few milliseconds) and
    OPTICS's quadratic part on at most ``sample_cap`` points (measured at 100k points: 4 ms at 100 points, 0.1 s at
    2,000)."""
    return float(min(n, sample_cap) + 400) ** 2


def warm_up() -> None:
    """What a worker imports before its first split (:meth:`CellMapper.start` runs it while the areas are fused)."""
    import sklearn.cluster  # noqa: F401


def _task(splitter: Callable, geoms: list, members: list[np.ndarray], lat: np.ndarray, lon: np.ndarray,
          cells: list[int], k: int) -> tuple:
    """Arguments of :func:`run_splitter` for task ``k`` of a wave: the splitter, one cell's shape and points."""
    i = cells[k]
    return splitter, geoms[i], lat[members[i]], lon[members[i]]


def run_splitter(splitter: Callable, geom, lat: np.ndarray, lon: np.ndarray) -> list | None:
    """``splitter(geom, lat, lon)``: one task of :func:`split_oversized` (a module-level function for the workers)."""
    return splitter(geom, lat, lon)


def split_cell(geom, lat: np.ndarray, lon: np.ndarray, grouper: Grouper, min_size: int, max_size: int,
               seed: int = 0, sample_cap: int = SAMPLE_CAP) -> list | None:
    """Split one cell by the paper's rules; None when ``grouper`` finds no admissible split.

    Args:
        geom: the cell's shape, (lon, lat) degrees.
        lat, lon: (n,) the cell's points.
        grouper: cluster labels of the sampled points (OPTICS, see :func:`optics_labels`).
        min_size, max_size: cell size bounds.
        seed: with the cell's own points, seeds the sample of a cell above ``sample_cap`` points, so the sample
            is the same whichever cells were split before and in which process.
        sample_cap: most points ``grouper`` sees.

    Returns:
        list of ``(shape, indices into lat/lon)`` children, at least two, each shape one piece plus islands.
    """
    centre = spherical_mean(lat, lon)[1]
    lo = unwrap_lon(lon, centre)  # a local frame, continuous across the antimeridian
    n = len(lat)
    sample = (np.sort(sample_generator(seed, lat, lon).choice(n, sample_cap, replace=False)) if n > sample_cap
              else np.arange(n))
    k = plane_scale(lat)
    xy = np.column_stack([lo * k, lat])
    sites, first = np.unique(xy[sample], axis=0, return_index=True)
    if len(sites) < 2:
        return None
    raw = grouper(lat[sample], lo[sample], n)
    if raw is None:
        return None
    near = cKDTree(sites).query(xy)[1]
    site_xyz = unit_xyz_km(sites[:, 1], sites[:, 0] / k)
    plan = resolve_clusters(np.asarray(raw)[first], near, site_xyz, min_size, max_size)
    if plan is None:
        return None
    groups, centroids = plan
    parent = _valid(scale_x(unwrap_geometry(geom, centre), k))
    if centroids is None:
        shapes = _carve_cluster(parent, sites, groups)
        outside_group = groups[near]
    else:
        c_lat, c_lon = xyz_to_latlon(centroids)
        c_xy = np.column_stack([unwrap_lon(c_lon, centre) * k, c_lat])
        shapes = _centroid_regions(parent, c_xy)
        outside_group = cKDTree(c_xy).query(xy)[1]
    if any(shapely.is_empty(s) for s in shapes):
        return None
    shapes = dirty_split_cleanup(shapes)
    owner = locate_points(lat, lo * k, np.asarray(shapes, dtype=object), nearest=False)
    outside = owner < 0  # points off the parent's land keep the group of the region they lie in
    owner[outside] = outside_group[outside]
    shapes, owner = _drop_empty(shapes, owner)
    if len(shapes) < 2:
        return None
    return [(wrap_geometry(_valid(scale_x(s, 1.0 / k))), np.flatnonzero(owner == j)) for j, s in enumerate(shapes)]


def sample_generator(seed: int, lat: np.ndarray, lon: np.ndarray) -> np.random.Generator:
    """The random generator of one cell's sample: from ``seed`` and a hash of the cell's points."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.ascontiguousarray(lat, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(lon, dtype=np.float64).tobytes())
    return np.random.default_rng([seed, int.from_bytes(digest.digest(), "little")])


def median_split(geom, lat: np.ndarray, lon: np.ndarray) -> list | None:
    """Cut one cell in two at the median of its points along the longer axis (in a local plane).

    Not in the paper (``balance=True``). The cut is a straight line; where the median lies off the cell's land
    (points at sea), the line moves to the middle of the land, so both halves have land; if the points
    then all fall on one side, the other axis is tried. Halves may hold fewer than ``min_size`` points.

    Returns:
        two ``(shape, indices into lat/lon)`` children, or None.
    """
    centre = spherical_mean(lat, lon)[1]
    k = plane_scale(lat)
    xy = np.column_stack([unwrap_lon(lon, centre) * k, lat])
    parent = _valid(scale_x(unwrap_geometry(geom, centre), k))
    bounds = np.asarray(shapely.bounds(parent))
    far = 10.0 * (1.0 + np.abs(bounds).max())
    for axis in np.argsort(-np.ptp(xy, axis=0), kind="stable"):
        low, high = bounds[axis], bounds[axis + 2]
        values = np.sort(xy[:, axis])
        cut = float(values[len(values) // 2 - 1] + values[len(values) // 2]) / 2  # between points, not through one
        if not low < cut < high:
            cut = (low + high) / 2
        first = xy[:, axis] <= cut
        if first.all() or not first.any():
            continue
        below = shapely.box(-far, -far, cut, far) if axis == 0 else shapely.box(-far, -far, far, cut)
        shapes = dirty_split_cleanup([polygonal(shapely.intersection(parent, below)),
                                      polygonal(shapely.difference(parent, below))])
        owner = locate_points(xy[:, 1], xy[:, 0], np.asarray(shapes, dtype=object), nearest=False)
        outside = owner < 0  # points off the land follow the line
        owner[outside] = (~first[outside]).astype(np.int64)
        shapes, owner = _drop_empty(shapes, owner)
        if len(shapes) == 2:
            return [(wrap_geometry(_valid(scale_x(s, 1.0 / k))), np.flatnonzero(owner == j))
                    for j, s in enumerate(shapes)]
    return None


def _valid(geom):
    """``geom`` repaired where rescaling its coordinates made it invalid (a rounding self-intersection)."""
    return geom if shapely.is_valid(geom) else polygonal(shapely.make_valid(geom))


def resolve_clusters(labels: np.ndarray, near: np.ndarray, site_xyz: np.ndarray, min_size: int, max_size: int
                     ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The paper's rules turning OPTICS labels of the sites into a split, or None for no split.

    Args:
        labels: (s,) cluster label of each site (-1 = noise).
        near: (n,) site of each point (its nearest site), so counts are in points.
        site_xyz: (s, 3) sites on the sphere.
        min_size, max_size: cell size bounds.

    Returns:
        ``(groups, centroids)``: with ``centroids`` None, ``groups`` (s,) is 1 for the sites of the cluster to
        carve out and 0 for the rest (doughnut, two clusters); otherwise ``groups`` (s,) is the cluster
        0..g-1 of each site and ``centroids`` (g, 3) the cluster centroids whose Voronoi regions are the
        children (three or more clusters).
    """
    labels = labels.copy()
    counts = np.bincount(labels[near] + 1)
    labels[np.isin(labels, np.flatnonzero(counts[1:] < min_size))] = -1  # small clusters are noise
    clusters = np.unique(labels[labels >= 0])
    n_noise = int((labels[near] < 0).sum())
    if len(clusters) + (n_noise >= min_size) < 2:
        return None
    if len(clusters) == 1:  # the doughnut: carve out the cluster if the ring around it is not too big
        return None if n_noise > max_size else ((labels == clusters[0]).astype(np.int64), None)
    point_labels = labels[near]
    centroids = np.stack([site_xyz[near[point_labels == c]].mean(axis=0) for c in clusters])
    noise = labels < 0
    labels[noise] = clusters[np.argmax(site_xyz[noise] @ centroids.T, axis=1)]
    if len(clusters) == 2:  # carve out the first cluster, noise included; the rest stays
        return (labels == clusters[0]).astype(np.int64), None
    return np.searchsorted(clusters, labels), centroids


def _voronoi(points: np.ndarray, parent) -> np.ndarray:
    """Voronoi regions of ``points`` (in order), covering ``parent``."""
    xmin, ymin, xmax, ymax = np.concatenate([np.minimum(points.min(0), shapely.bounds(parent)[:2]),
                                             np.maximum(points.max(0), shapely.bounds(parent)[2:])])
    pad = max(xmax - xmin, ymax - ymin) + 1.0
    extent = shapely.box(xmin - pad, ymin - pad, xmax + pad, ymax + pad)
    regions = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(points), extend_to=extent, ordered=True))
    if len(regions) != len(points):  # GEOS merged near-coincident points: match regions to points by location
        regions = regions[locate_points(points[:, 1], points[:, 0], regions)]
    return regions


def _carve_cluster(parent, sites: np.ndarray, groups: np.ndarray) -> list:
    """``[rest, cluster]``: the cluster is the union of its sites' Voronoi regions in ``parent``, holes filled."""
    regions = _voronoi(sites, parent)
    shapely.prepare(parent)
    cluster = shapely.intersection(shapely.coverage_union_all(regions[groups == 1]), parent)
    if cluster.geom_type == "Polygon":  # as the reference: a one-piece cluster takes in its holes
        cluster = shapely.intersection(shapely.Polygon(cluster.exterior), parent)
    return [polygonal(shapely.difference(parent, cluster)), polygonal(cluster)]


def _centroid_regions(parent, centroids: np.ndarray) -> list:
    """The Voronoi region of each centroid, within ``parent``."""
    shapely.prepare(parent)
    return [polygonal(g) for g in shapely.intersection(_voronoi(centroids, parent), parent)]


def dirty_split_cleanup(shapes: Sequence) -> list:
    """Make each shape one piece plus islands: other pieces go to the sibling they share the longest border with.

    Each shape keeps its largest piece; a piece that borders no sibling stays (the reference's
    ``__clean_dirty_splits``, which also keeps the largest part).

    Args:
        shapes: (g,) sibling polygons in a plane.

    Returns:
        g shapes.
    """
    pieces, owner = polygon_parts(shapes)
    if np.bincount(owner, minlength=len(shapes)).max(initial=0) <= 1:
        return list(shapes)
    area = shapely.area(pieces)
    i, j, length = border_graph(pieces, wrap=False)
    owner = contiguous_groups(owner, i, j, length, area)
    return [shapely.union_all(pieces[owner == g]) if (owner == g).any() else shapely.Polygon()
            for g in range(len(shapes))]


def _drop_empty(shapes: list, owner: np.ndarray) -> tuple[list, np.ndarray]:
    """Merge children without points into the sibling they border most (else the nearest one)."""
    counts = np.bincount(owner, minlength=len(shapes))
    if (counts > 0).all():
        return shapes, owner
    full = np.flatnonzero(counts > 0)
    shapes = list(shapes)
    for e in np.flatnonzero(counts == 0):
        others = np.asarray([shapes[f] for f in full], dtype=object)
        shared = shapely.length(shapely.intersection(shapely.boundary(shapes[e]), shapely.buffer(others, 1e-6)))
        f = full[int(np.argmax(shared))] if shared.max() > 0 else full[int(np.argmin(shapely.distance(shapes[e],
                                                                                                      others)))]
        shapes[f] = shapely.union_all([shapes[f], shapes[e]])
    return [shapes[f] for f in full], np.searchsorted(full, owner)
