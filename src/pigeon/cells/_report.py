"""Inspecting geocells: a coloured map, summary statistics and a GeoJSON export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pigeon._io import atomic_path
from pigeon.errors import InputError

if TYPE_CHECKING:
    from pigeon.cells._geocells import GeoCells

#: An equal-area CRS (NSIDC EASE-Grid 2.0 Global) for cell areas in km².


def plot_cells(cells: GeoCells, path: str | os.PathLike,
               bbox: tuple[float, float, float, float] | None = None, seed: int = 0) -> Path:
    """Draw the cells on a world map, each in a random colour, with their centroids; write a PNG.

    Args:
        cells: the geocells.
        path: output PNG.
        bbox: ``(lat_min, lon_min, lat_max, lon_max)`` degrees to zoom on; default the whole world.
        seed: seed of the colour shuffle.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if bbox is not None and not (-90 <= bbox[0] < bbox[2] <= 90 and -180 <= bbox[1] < bbox[3] <= 180):
        raise InputError(f"bbox {bbox} must be lat_min,lon_min,lat_max,lon_max with min < max within the globe")
    fig, ax = plt.subplots(figsize=(14, 7.5), dpi=150)
    try:
        draw_cells(ax, cells, bbox, seed)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def draw_cells(ax, cells: GeoCells, bbox: tuple[float, float, float, float] | None = None, seed: int = 0) -> None:
    """Draw the cells and their centroids on ``ax`` over a world map (cells cut at ±180 draw at both edges)."""
    import matplotlib.pyplot as plt

    from pigeon.plotting import world_map

    world_map(ax, bbox)
    colours = plt.get_cmap("tab20")(np.random.default_rng(seed).integers(0, 20, len(cells)))
    colours[:, 3] = 0.75
    cells.table.plot(ax=ax, color=colours, edgecolor="#333333", linewidth=0.15, zorder=1)
    cent = cells.centroids
    ax.scatter(cent[:, 1], cent[:, 0], s=0.6, c="black", linewidths=0, zorder=2)
    if bbox is not None:
        ax.set_xlim(bbox[1], bbox[3])
        ax.set_ylim(bbox[0], bbox[2])
    method = cells.meta.get("config", {}).get("method", "")
    ax.set_title(f"{len(cells)} {method} geocells, {int(cells.table['n_train'].sum())} training points")


def cell_regions(cells: GeoCells, lat=None, lon=None) -> pd.DataFrame:
    """The connected regions of every cell (joined across the antimeridian), with what they touch.

    Args:
        cells: the geocells.
        lat, lon: optional (n,) points (e.g. the training points), counted in the region they lie in (points
            at sea lie in none).

    Returns:
        One row per region: ``cell``, ``region``, ``area`` (square degrees), ``n_points``, ``main`` (the
        region with most points, as the contiguity cleanup chooses it; without points, the largest region
        that borders another cell), ``exclave`` (not main and it shares a border with
        another cell of the same country), ``island`` (not main and borders no such cell).
    """
    from pigeon.cells._spatial import locate_points
    from pigeon.geography._topology import regions

    table = regions(cells.table.geometry.to_numpy(), cells.table["country"].fillna("").to_numpy(dtype=object))
    table = table.rename(columns={"shape": "cell"})
    table["n_points"] = 0
    if lat is not None:
        hit = locate_points(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64),
                            table.geometry.to_numpy(), nearest=False)
        table["n_points"] = np.bincount(hit[hit >= 0], minlength=len(table))
    order = table.sort_values(["cell", "n_points", "touches_other", "area"], ascending=[True, False, False, False],
                              kind="stable").index
    table["main"] = table.index.isin(table.loc[order].drop_duplicates("cell").index)
    table["exclave"] = ~table["main"] & table["touches_other"]
    table["island"] = ~table["main"] & ~table["touches_other"]
    return table.drop(columns=["geometry", "touches_other"])


def cell_stats(cells: GeoCells, lat=None, lon=None) -> dict[str, Any]:
    """Counts and the distributions of cell sizes (training points), areas (km², equal-area CRS) and parts.

    Parts are the connected regions of a cell (:func:`cell_regions`). With points (e.g. the training
    points), also the share of them that lie in exclaves (a part of a cell, other than its main part, that
    borders another cell of the same country) and on islands (such a part that borders no other cell).
    """
    table = cells.table
    sizes = table["n_train"].to_numpy(dtype=np.float64)
    area = cells.areas_km2
    cfg = cells.meta.get("config", {})
    parts = cell_regions(cells, lat, lon)
    per_cell = parts.groupby("cell").agg(n=("region", "size"), exclave=("exclave", "any"), island=("island", "any"))

    def dist(x: np.ndarray) -> dict[str, float]:
        q = np.percentile(x, [0, 10, 50, 90, 100]) if len(x) else [np.nan] * 5
        return {"min": q[0], "p10": q[1], "median": q[2], "p90": q[3], "max": q[4],
                "mean": float(np.mean(x)) if len(x) else np.nan}

    below = small_country = None
    if "min_size" in cfg:
        country_total = table.groupby(table["country"].fillna(""))["n_train"].transform("sum").to_numpy()
        below = int((sizes < cfg["min_size"]).sum())
        small_country = int(((sizes < cfg["min_size"]) & (country_total < cfg["min_size"])).sum())
    stats = {
        "n_cells": len(cells), "n_train": int(sizes.sum()), "method": cfg.get("method"),
        "min_size": cfg.get("min_size"), "max_size": cfg.get("max_size"),
        "countries": int(table["country"].nunique()),
        "below_min_size": below, "below_min_size_country_smaller": small_country,
        "above_max_size": int((sizes > cfg["max_size"]).sum()) if "max_size" in cfg else None,
        "multipart_cells": int((per_cell["n"] > 1).sum()),
        "cells_with_exclaves": int(per_cell["exclave"].sum()), "cells_with_islands": int(per_cell["island"].sum()),
        "size": {k: float(v) for k, v in dist(sizes).items()},
        "area_km2": {k: float(v) for k, v in dist(area).items()},
        "parts": {k: float(v) for k, v in dist(per_cell["n"].to_numpy(dtype=np.float64)).items()},
    }
    if lat is not None:  # shares of all the points given, at sea included
        n = max(len(lat), 1)
        stats["exclave_share"] = float(parts.loc[parts["exclave"], "n_points"].sum() / n)
        stats["island_share"] = float(parts.loc[parts["island"], "n_points"].sum() / n)
    return stats


def export_geojson(cells: GeoCells, path: str | os.PathLike) -> Path:
    """Write the cell table as a GeoJSON FeatureCollection (EPSG:4326) for GIS tools."""
    with atomic_path(path) as tmp:
        tmp.write_text(cells.table.to_json(drop_id=True))
    return Path(path)
