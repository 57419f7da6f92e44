"""The evaluation report folder: metrics, per-image errors, breakdowns by country, cell and distance to training."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon._io import atomic_path, provenance, write_json, write_table
from pigeon.evaluate._calibration import calibration_markdown, write_calibration
from pigeon.evaluate._metrics import METRIC_KEYS, match_predictions, metrics_by_band, metrics_by_group, summarize
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


def _countries_of(joined: pd.DataFrame) -> np.ndarray | None:
    """ISO alpha-2 code of each true location (None at sea), or None when country lookup is unavailable."""
    try:
        from pigeon.geography import country_of
    except ImportError:
        return None
    return country_of(joined["lat"], joined["lon"])


def _write_md(path: Path, sections: list[tuple[str, str]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(f"{title}\n\n{body}" if title else body for title, body in sections))


def write_report(pred_df: pd.DataFrame, truth_df: pd.DataFrame, out_dir: str | os.PathLike,
                 config: dict | None = None, *, name: str | None = None, train_df: pd.DataFrame | None = None,
                 cells=None, seed: int = 0) -> dict:
    """Evaluate predictions and write the report folder.

    Writes ``metrics.json`` (:data:`METRIC_KEYS`, and ``calibration`` when the predictions carry P(within r) or
    credible-region columns, with ``reliability.png``: :mod:`pigeon.evaluate._calibration`), ``meta.json``
    (provenance), ``metrics.md``,
    ``errors.parquet`` (per image: truth, guess, ``distance_km``, ``geoscore``, ``country`` of the truth and,
    when given, ``train_distance_km`` and ``cell``), ``error_cdf.png``, ``error_map.png`` (arcs for a seeded
    sample), ``by_country.csv`` / ``by_country.png`` (median error and accuracy within 750 km per country),
    with ``train_df`` ``by_train_distance.csv`` / ``error_vs_train_distance.png`` (metrics by distance band to
    the nearest training location) and with ``cells`` ``by_cell.csv`` / ``by_cell.png``.

    Args:
        pred_df: predictions, see :func:`compute_metrics`.
        truth_df: ``id, lat, lon`` of every evaluated image.
        out_dir: report folder (created).
        config: recorded in ``meta.json`` (e.g. the input paths).
        name: the run's name in every figure title; default the folder's name.
        train_df: the training locations (``lat, lon``) for the breakdown by distance from each test location to
            the nearest training location (locations only; :func:`pigeon.data.split_manifest` also keeps view
            centres apart).
        cells: a :class:`~pigeon.cells.GeoCells` (e.g. the model's) for the per-cell maps.
        seed: seed of the arc sample.

    Returns:
        The metrics dict.
    """
    from pigeon.data import distance_to_rows_km
    from pigeon.evaluate._plots import (
        plot_choropleth, plot_error_cdf, plot_error_map, plot_error_vs_train_distance,
    )

    out = Path(out_dir)
    name = name or out.resolve().name
    joined = match_predictions(pred_df, truth_df)
    metrics = summarize(joined)
    sections = [("", to_markdown(metrics_table({name: metrics})))]
    if train_df is not None:
        truth = truth_df.assign(id=truth_df["id"].astype(str)).drop_duplicates("id").set_index("id")
        joined["train_distance_km"], _ = distance_to_rows_km(truth.loc[joined["id"]].reset_index(), train_df,
                                                             views=False)
        bands = metrics_by_band(joined)
        sections.append(("## By distance to the nearest training location", to_markdown(
            metrics_table({label: row.to_dict() for label, row in bands.iterrows()}))))
    countries = _countries_of(joined)
    if countries is not None:
        joined["country"] = countries
    if cells is not None:
        joined["cell"] = cells.assign(joined["lat"], joined["lon"])

    out.mkdir(parents=True, exist_ok=True)
    calibration = write_calibration(pred_df, joined, out, cells=cells, name=name)
    if calibration is not None:
        metrics["calibration"] = calibration
        sections.append(("## Calibration", calibration_markdown(calibration)))
    write_json(out / "metrics.json", metrics)
    meta = provenance("evaluation", dict(config or {}))
    meta.update(name=name, n_train=None if train_df is None else len(train_df))
    write_json(out / "meta.json", meta)
    write_table(joined.assign(geoscore=geoguessr_score(joined["distance_km"])), out / "errors.parquet")
    plot_error_cdf(joined["distance_km"], out / "error_cdf.png", metrics, name=name)
    plot_error_map(joined, out / "error_map.png", seed=seed, name=name)
    if train_df is not None:
        write_table(bands.reset_index(), out / "by_train_distance.csv")
        plot_error_vs_train_distance(joined, out / "error_vs_train_distance.png", name=name)
    if countries is not None:
        from pigeon.geography import countries as country_shapes

        table = metrics_by_group(joined, countries)
        shapes = country_shapes().rename(columns={"iso_a2": "key"})
        names = table["key"].map(shapes.set_index("key")["name"])
        write_table(table.rename(columns={"key": "country"}).assign(name=names), out / "by_country.csv")
        plot_choropleth(shapes, table, out / "by_country.png", name=name, what="country")
    if cells is not None:
        table = metrics_by_group(joined, joined["cell"])
        write_table(table.rename(columns={"key": "cell"}), out / "by_cell.csv")
        plot_choropleth(cells.table.assign(key=np.arange(len(cells))), table, out / "by_cell.png", name=name,
                        what="cell")
    _write_md(out / "metrics.md", sections)
    return metrics
