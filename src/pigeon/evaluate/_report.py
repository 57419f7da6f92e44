"""The evaluation report folder: metrics.json, meta.json, metrics.md, errors.parquet and two figures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon._io import atomic_path, provenance, write_json, write_table
from pigeon.evaluate._metrics import METRIC_KEYS, match_predictions, summarize
from pigeon.geo import RADII_KM, geoguessr_score

#: Row labels of the metrics table; the radii carry the paper's names.
LABELS = {
    "n": "images",
    **{f"acc_{r}km": f"{name} ({r:,} km)"
       for r, name in zip(RADII_KM, ("street", "city", "region", "country", "continent"), strict=True)},
    "median_km": "median error (km)",
    "mean_km": "mean error (km)",
    "geoscore_mean": "GeoGuessr score (mean)",
    "country_acc": "country accuracy",
}
_MAP_LINES = 3000  # at most this many truth -> guess arcs on the error map (a seeded sample beyond it)


def format_value(key: str, value) -> str:
    """A metric as table text: fractions as percent, km with a thousands separator."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if key == "n":
        return f"{int(value):,}"
    if key.startswith("acc_") or key == "country_acc":
        return f"{100 * value:.1f} %"
    return f"{value:,.1f}"


def metrics_table(runs: dict[str, dict]) -> pd.DataFrame:
    """Formatted metrics side by side: one row per metric (labelled), one column per run."""
    return pd.DataFrame({name: [format_value(k, m.get(k)) for k in METRIC_KEYS] for name, m in runs.items()},
                        index=[LABELS[k] for k in METRIC_KEYS])


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (metric names left, values right-aligned)."""
    header = ["metric", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(table.columns)]
    lines += ["| " + " | ".join([str(label), *row]) + " |"
              for label, row in zip(table.index, table.to_numpy(), strict=True)]
    return "\n".join(lines) + "\n"


def plot_error_cdf(distance_km, path: str | os.PathLike, metrics: dict | None = None) -> Path:
    """Share of guesses within d (log-distance axis), with the five radii marked; saved as PNG."""
    import matplotlib.pyplot as plt

    d = np.sort(np.asarray(distance_km, dtype=np.float64))
    lo = min(0.1, max(float(d[0]), 1e-3))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.step(np.r_[lo, np.maximum(d, lo), 20_100], np.r_[0, np.arange(1, d.size + 1) / d.size, 1.0],
            where="post", color="#1f5fa8", linewidth=1.8)
    for r, key in zip(RADII_KM, [k for k in METRIC_KEYS if k.startswith("acc_")], strict=True):
        ax.axvline(r, color="#888888", linestyle="--", linewidth=0.8)
        label = LABELS[key].split(" (")[0]
        share = metrics[key] if metrics else float(np.mean(d < r))
        ax.annotate(f"{label}\n{100 * share:.1f} %", (r, 1.0), xytext=(3, -4), textcoords="offset points",
                    va="top", fontsize=8, color="#444444", bbox={"fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xscale("log")
    ax.set_xlim(lo, 20_100)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("great-circle error d (km)")
    ax.set_ylabel("share of guesses within d")
    ax.set_title(f"Error distribution (n = {d.size:,})")
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


def plot_error_map(joined: pd.DataFrame, path: str | os.PathLike, seed: int = 0) -> Path:
    """World map with an arc from each true location (dot) to its guess (cross); saved as PNG."""
    import matplotlib.pyplot as plt

    from pigeon.plotting import bbox_around, great_circle_lines, world_map

    if len(joined) > _MAP_LINES:
        joined = joined.sample(_MAP_LINES, random_state=seed)
    lat = np.r_[joined["lat"], joined["pred_lat"]]
    lon = np.r_[joined["lon"], joined["pred_lon"]]
    fig, ax = plt.subplots(figsize=(10, 5.6), dpi=120)
    world_map(ax, bbox_around(lat, lon))
    great_circle_lines(ax, joined["lat"], joined["lon"], joined["pred_lat"], joined["pred_lon"],
                       colors="#c0392b", linewidths=0.6, alpha=0.45, zorder=2)
    ax.scatter(joined["lon"], joined["lat"], s=10, color="#1e8449", label="truth", zorder=3, linewidths=0)
    ax.scatter(joined["pred_lon"], joined["pred_lat"], s=14, marker="x", color="#c0392b", label="guess",
               zorder=3, linewidths=0.9)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"Truth → guess ({len(joined):,} images)")
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def write_report(pred_df: pd.DataFrame, truth_df: pd.DataFrame, out_dir: str | os.PathLike,
                 config: dict | None = None) -> dict:
    """Evaluate predictions and write the report folder.

    Writes ``metrics.json`` (exactly :data:`METRIC_KEYS`), ``meta.json`` (provenance), ``metrics.md``,
    ``errors.parquet`` (per image: truth, guess, ``distance_km``, ``geoscore``), ``error_cdf.png`` and
    ``error_map.png``.

    Args:
        pred_df: predictions, see :func:`compute_metrics`.
        truth_df: ``id, lat, lon`` of every evaluated image.
        out_dir: report folder (created).
        config: recorded in ``meta.json`` (e.g. the input paths).

    Returns:
        The metrics dict.
    """
    out = Path(out_dir)
    joined = match_predictions(pred_df, truth_df)
    metrics = summarize(joined)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    write_json(out / "meta.json", provenance("evaluation", dict(config or {})))
    with atomic_path(out / "metrics.md") as tmp:
        tmp.write_text(to_markdown(metrics_table({"value": metrics})))
    write_table(joined.assign(geoscore=geoguessr_score(joined["distance_km"])), out / "errors.parquet")
    plot_error_cdf(joined["distance_km"], out / "error_cdf.png", metrics)
    plot_error_map(joined, out / "error_map.png")
    return metrics
