"""Report figures: error CDF (one curve per run), a sample of truth-to-guess arcs, choropleths, error vs distance
to training. Every title names the run, so figures of two runs cannot be mixed up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon._io import atomic_path
from pigeon.evaluate._metrics import DISTANCE_BANDS_KM
from pigeon.geo import RADII_KM

#: Arcs drawn on the error map: a seeded sample of this many locations (all when fewer).
MAX_ARCS = 300
_RADIUS_NAMES = ("street", "city", "region", "country", "continent")
_CURVE_COLOURS = ("#1f5fa8", "#c0392b", "#1e8449", "#8e44ad", "#d68910", "#566573")


def _figure(figsize):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=120)


def _save(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def plot_error_cdf(distance_km, path: str | os.PathLike, metrics: dict | None = None, name: str = "") -> Path:
    """Share of guesses within d (log-distance axis) with the five radii marked; saved as PNG.

    Args:
        distance_km: errors of one run (n,), or ``{run name: errors}`` for one curve per run.
        path: output PNG.
        metrics: the run's metrics, to label the radii with its shares (one run only).
        name: the run's name for the title.
    """
    runs = dict(distance_km) if isinstance(distance_km, Mapping) else {name or "errors": distance_km}
    runs = {k: np.sort(np.asarray(v, dtype=np.float64)) for k, v in runs.items()}
    lo = min(0.1, max(min(float(d[0]) for d in runs.values()), 1e-3))
    fig, ax = _figure((7, 4.2))
    for (label, d), colour in zip(runs.items(), _CURVE_COLOURS * (len(runs) // len(_CURVE_COLOURS) + 1)):
        ax.step(np.r_[lo, np.maximum(d, lo), 20_100], np.r_[0, np.arange(1, d.size + 1) / d.size, 1.0],
                where="post", color=colour, linewidth=1.8, label=f"{label} (n = {d.size:,})")
    single = next(iter(runs.values())) if len(runs) == 1 else None
    for r, radius_name in zip(RADII_KM, _RADIUS_NAMES, strict=True):
        ax.axvline(r, color="#888888", linestyle="--", linewidth=0.8)
        text = radius_name
        if single is not None:
            share = metrics[f"acc_{r}km"] if metrics else float(np.mean(single < r))
            text += f"\n{100 * share:.1f} %"
        ax.annotate(text, (r, 1.0), xytext=(3, -4), textcoords="offset points", va="top", fontsize=8,
                    color="#444444", bbox={"fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xscale("log")
    ax.set_xlim(lo, 20_100)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("great-circle error d (km)")
    ax.set_ylabel("share of guesses within d")
    if single is not None:
        ax.set_title(f"Error distribution: {name or 'errors'} (n = {single.size:,})")
    else:
        ax.set_title(f"Error distribution of {len(runs)} runs" + (f": {name}" if name else ""))
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.93), fontsize=8)  # the runs are named here
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


def plot_error_map(joined: pd.DataFrame, path: str | os.PathLike, seed: int = 0, name: str = "",
                   max_arcs: int = MAX_ARCS) -> Path:
    """World map with an arc from each true location (dot) to its guess (cross), for a seeded sample; PNG."""
    from pigeon.plotting import bbox_around, great_circle_lines, world_map

    shown = joined.sample(max_arcs, random_state=seed) if len(joined) > max_arcs else joined
    lat = np.r_[shown["lat"], shown["pred_lat"]]
    lon = np.r_[shown["lon"], shown["pred_lon"]]
    fig, ax = _figure((10, 5.6))
    world_map(ax, bbox_around(lat, lon))
    great_circle_lines(ax, shown["lat"], shown["lon"], shown["pred_lat"], shown["pred_lon"],
                       colors="#c0392b", linewidths=0.6, alpha=0.45, zorder=2)
    ax.scatter(shown["lon"], shown["lat"], s=10, color="#1e8449", label="truth", zorder=3, linewidths=0)
    ax.scatter(shown["pred_lon"], shown["pred_lat"], s=14, marker="x", color="#c0392b", label="guess",
               zorder=3, linewidths=0.9)
    ax.legend(loc="lower left", fontsize=8)
    sample = (f"a random sample of {len(shown):,} of {len(joined):,} images (seed {seed})" if len(shown) < len(joined)
              else f"{len(joined):,} images")
    ax.set_title(f"Truth → guess: {name or 'errors'}, {sample}")
    return _save(fig, path)


def plot_choropleth(areas, table: pd.DataFrame, path: str | os.PathLike, name: str = "", what: str = "country",
                    min_images: int = 1) -> Path:
    """Two maps: median error and accuracy within 750 km per area (country or cell); PNG.

    Args:
        areas: GeoDataFrame with a ``key`` column and the area polygons (EPSG:4326).
        table: per-area metrics from :func:`pigeon.evaluate.metrics_by_group` (``key``, ``n``, ``median_km``,
            ``acc_750km``).
        path: output PNG.
        name: the run's name for the titles.
        what: what an area is, for the titles.
        min_images: areas with fewer evaluated images are drawn grey.
    """
    import matplotlib.pyplot as plt
    import shapely

    from pigeon.plotting import world_map

    shown = table[table["n"] >= min_images]
    geo = areas.merge(shown, on="key", how="inner")
    geo = geo.set_geometry(shapely.simplify(geo.geometry.to_numpy(), 0.05, preserve_topology=True))
    fig, axes = plt.subplots(2, 1, figsize=(10, 10.4), dpi=120)
    panels = (("median_km", "median error (km)", "magma_r", None), ("acc_750km", "within 750 km", "viridis", (0, 1)))
    for ax, (column, label, cmap, limits) in zip(axes, panels):
        world_map(ax)
        if len(geo):
            vmin, vmax = limits or (0.0, float(np.nanmax(geo[column])) or 1.0)
            geo.plot(ax=ax, column=column, cmap=cmap, vmin=vmin, vmax=vmax, edgecolor="#555555", linewidth=0.2,
                     zorder=1, legend=True, legend_kwds={"shrink": 0.6, "label": label})
        plural = "countries" if what == "country" else f"{what}s"
        few = f" with >= {min_images} images" if min_images > 1 else ""
        ax.set_title(f"{label.capitalize()} by {what}: {name or 'errors'} ({len(geo)} {plural}{few})")
    return _save(fig, path)


def plot_error_vs_train_distance(joined: pd.DataFrame, path: str | os.PathLike, name: str = "") -> Path:
    """Each test location's error against its distance to the nearest training location, with band medians; PNG."""
    d_train = np.maximum(joined["train_distance_km"].to_numpy(np.float64), 0.1)
    err = np.maximum(joined["distance_km"].to_numpy(np.float64), 0.1)
    fig, ax = _figure((7, 4.6))
    ax.scatter(d_train, err, s=9, alpha=0.5, color="#1f5fa8", linewidths=0, label="test location")
    edges = [min(1.0, float(d_train.min())), *DISTANCE_BANDS_KM, max(20_000.0, float(d_train.max()) * 1.5)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (d_train >= lo) & (d_train < hi)
        if inside.any():
            ax.hlines(np.median(err[inside]), lo, hi, color="#c0392b", linewidth=2.2)
            ax.annotate(f"n = {int(inside.sum())}", (np.sqrt(lo * hi), np.median(err[inside])), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8, color="#c0392b")
    for edge in DISTANCE_BANDS_KM:
        ax.axvline(edge, color="#888888", linestyle="--", linewidth=0.8)
    ax.plot([], [], color="#c0392b", linewidth=2.2, label="median error in the band")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("distance to the nearest training location (km)")
    ax.set_ylabel("error (km)")
    ax.set_title(f"Error vs distance to training: {name or 'errors'} (n = {len(joined):,})")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)

