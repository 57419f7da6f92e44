"""Train / val / test splits, including spatially separated ones.

A random split puts photos of the same place on both sides: with 640 km views (the demo) or a city photographed
thousands of times (Flickr), a test image often has a training image of the same ground, and the score then mixes
"recognises ground it has seen" with "generalises to new places". :func:`split_manifest` offers three ways:

``random``
    each row independently (exactly proportional counts).
``region``
    whole areas: the locations are clustered into ``n_regions`` compact regions (k-means on the unit sphere)
    and each region goes to one split.
``cell``
    whole geocells: the given :class:`~pigeon.cells.GeoCells` (e.g. the model's), or naive (quadtree) cells
    built on the fly with about ``n_regions`` cells.

Whole regions or cells are handed to the split furthest below its target share, in a seeded random order, so
the shares are met to within one region. Then, with ``buffer_km > 0``, every training row closer than
``buffer_km`` to a val or test row leaves the training split (its ``split`` becomes empty): afterwards every
val/test row is at least ``buffer_km`` from every training row. Distances are great-circle km between the
closest pair of :func:`~pigeon.data.location_points` of two rows (the location and, where the manifest has
them, its view centres), so views that look at the same ground count as close.

The split configuration and the resulting counts are recorded in ``df.attrs["meta"]["split"]``, which
:func:`~pigeon.data.write_manifest` stores with the manifest.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pigeon.data._config import DEFAULT_REGIONS, SPLIT_METHODS, SPLITS, SplitConfig, parse_split  # noqa: F401
from pigeon.data.manifest import distance_to_rows_km, validate_manifest
from pigeon.errors import InputError
from pigeon.geo import latlon_to_xyz

def assign_splits(n: int, fractions: Sequence[float], seed: int = 0) -> np.ndarray:
    """A random train/val/test label per row with exactly proportional counts (largest remainder).

    Args:
        n: number of rows.
        fractions: (train, val, test) fractions summing to 1.
        seed: random seed; the same ``(n, fractions, seed)`` gives the same labels.

    Returns:
        object array (n,) of ``"train"``, ``"val"``, ``"test"``.
    """
    exact = np.asarray(fractions, dtype=np.float64) * n
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    labels = np.repeat(np.array(SPLITS, dtype=object), counts)
    return labels[np.random.default_rng(seed).permutation(n)]


def assign_groups(groups: np.ndarray, fractions: Sequence[float], seed: int = 0) -> np.ndarray:
    """A split label per row such that rows of one group share a label.

    Groups are taken in a seeded random order. Each goes to the split furthest below its target (relative to
    the target) among those it brings closer to their target; a group that would overshoot every split goes to
    the one furthest below. Every split so ends within about half a group of its share.

    Args:
        groups: (n,) group key of each row (region, cell ...).
        fractions: (train, val, test) fractions summing to 1.
        seed: random seed.

    Returns:
        object array (n,) of ``"train"``, ``"val"``, ``"test"``.
    """
    keys, inverse, sizes = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    target = np.asarray(fractions, dtype=np.float64) * len(inverse)
    counts = np.zeros(len(SPLITS))
    label = np.empty(len(keys), dtype=np.int64)
    for g in np.random.default_rng(seed).permutation(len(keys)):
        behind = np.where(target > 0, (target - counts) / np.where(target > 0, target, 1.0), -np.inf)
        closer = np.abs(counts + sizes[g] - target) < np.abs(counts - target)
        label[g] = int(np.argmax(np.where(closer, behind, -np.inf))) if closer.any() else int(np.argmax(behind))
        counts[label[g]] += sizes[g]
    return np.array(SPLITS, dtype=object)[label[inverse.reshape(-1)]]


def region_labels(lat, lon, n_regions: int, seed: int = 0) -> np.ndarray:
    """Compact regions: k-means of the points as unit vectors (so it is right across the dateline and poles).

    Returns:
        int64 (n,) region of each point, ``0 .. min(n_regions, distinct points) - 1``.
    """
    from sklearn.cluster import KMeans

    xyz = latlon_to_xyz(lat, lon).reshape(-1, 3)
    k = min(n_regions, len(np.unique(np.round(xyz, 9), axis=0)))
    if k <= 1:
        return np.zeros(len(xyz), dtype=np.int64)
    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(xyz).astype(np.int64)


def _cell_labels(df: pd.DataFrame, cells, n_regions: int, seed: int) -> tuple[np.ndarray, str]:
    from pigeon.cells import GeoCells

    lat, lon = df["lat"].to_numpy(), df["lon"].to_numpy()
    if cells is None:
        max_size = max(1, math.ceil(len(df) / n_regions))
        cells = GeoCells.build(lat, lon, method="naive", max_size=max_size, min_size=1, seed=seed)
        return cells.train_labels, f"naive cells built on the fly (max_size {max_size}, {len(cells)} cells)"
    source = str(cells)
    if isinstance(cells, (str, os.PathLike)):
        cells = GeoCells.load(cells)
        return cells.assign(lat, lon), source
    return cells.assign(lat, lon), f"{len(cells)} given cells"


def split_manifest(
    df: pd.DataFrame,
    by: str | SplitConfig = SplitConfig.by,
    *,
    fractions: Sequence[float] = SplitConfig.fractions,
    buffer_km: float = SplitConfig.buffer_km,
    seed: int = SplitConfig.seed,
    n_regions: int | None = None,
    cells=None,
) -> pd.DataFrame:
    """Give every row of a manifest a ``split``: ``train``, ``val``, ``test``, or empty (dropped by the buffer).

    Args:
        df: a manifest with ``lat``/``lon`` (and optionally ``view_lat``/``view_lon``).
        by: ``"random"``, ``"region"`` or ``"cell"`` (see the module docstring), or a :class:`SplitConfig` that
            gives every setting.
        fractions: (train, val, test) shares before the buffer; they sum to 1.
        buffer_km: training rows closer than this to any val/test row are left out of every split.
        seed: random seed (regions, the order groups are handed out, the random split).
        n_regions: regions for ``by="region"``, or about the number of on-the-fly cells for ``by="cell"``
            without ``cells``; default :data:`DEFAULT_REGIONS`.
        cells: for ``by="cell"``: a :class:`~pigeon.cells.GeoCells` or its folder; default naive cells.

    Returns:
        A copy of ``df`` with the ``split`` column; ``attrs["meta"]["split"]`` records the configuration, the
        counts (``excluded``: rows the buffer removed) and ``min_heldout_to_train_km``, the smallest distance
        from a val/test row to a training row.

    Raises:
        InputError: bad arguments, or a buffer that leaves no training row.
    """
    if isinstance(by, SplitConfig):
        return split_manifest(df, by.by, fractions=by.fractions, buffer_km=by.buffer_km, seed=by.seed,
                              n_regions=by.n_regions, cells=by.cells if cells is None else cells)
    fractions = tuple(float(f) for f in fractions)
    SplitConfig(by, fractions, float(buffer_km), seed, n_regions, None if cells is None else "given").validate()
    attrs = dict(df.attrs)
    df = validate_manifest(df, where="manifest to split")
    n_regions = n_regions or DEFAULT_REGIONS
    config: dict = {"by": by, "fractions": list(fractions), "buffer_km": float(buffer_km), "seed": seed}
    split = pd.Series(_assign(df, config, n_regions, cells), index=df.index, dtype=object)
    held_out = split.isin(["val", "test"]).to_numpy()
    config["views"] = all(c in df.columns for c in ("view_lat", "view_lon"))
    excluded = _buffer(df, split, held_out, float(buffer_km))
    if not (split == "train").any():
        raise InputError(f"the {by} split with a {buffer_km:g} km buffer leaves no training row; lower "
                         "--buffer-km" + (" or raise --regions" if by != "random" else ""))
    df["split"] = split.to_numpy()
    config["counts"] = {s: int((split == s).sum()) for s in SPLITS} | {"excluded": excluded}
    if held_out.any():
        gap, _ = distance_to_rows_km(df[held_out], df[(split == "train").to_numpy()])
        config["min_heldout_to_train_km"] = round(float(gap.min()), 3)
    df.attrs = {**attrs, "meta": {**attrs.get("meta", {}), "split": config}}
    return df


def _assign(df: pd.DataFrame, config: dict, n_regions: int, cells) -> np.ndarray:
    """A split label per row by ``config["by"]`` (random rows, whole regions or whole cells); records the
    regions or cells used in ``config``."""
    by, fractions, seed = config["by"], config["fractions"], config["seed"]
    if by == "random":
        return assign_splits(len(df), fractions, seed)
    if by == "region":
        config["n_regions"] = n_regions
        return assign_groups(region_labels(df["lat"], df["lon"], n_regions, seed), fractions, seed)
    labels, config["cells"] = _cell_labels(df, cells, n_regions, seed)
    return assign_groups(labels, fractions, seed)


def _buffer(df: pd.DataFrame, split: pd.Series, held_out: np.ndarray, buffer_km: float) -> int:
    """Leave out (split None) the training rows closer than ``buffer_km`` to a val/test row; how many."""
    if not (buffer_km > 0 and held_out.any()):
        return 0
    train = np.flatnonzero(~held_out)
    near, _ = distance_to_rows_km(df.iloc[train], df.iloc[np.flatnonzero(held_out)])
    drop = train[near < buffer_km]
    split.iloc[drop] = None
    return len(drop)
