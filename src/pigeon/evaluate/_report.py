"""The evaluation report folder: metrics, per-image errors, breakdowns by country, cell and distance to training."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pigeon._io import atomic_path, provenance, write_json, write_table
from pigeon.evaluate._metrics import METRIC_KEYS, match_predictions, metrics_by_band, metrics_by_group, summarize
from pigeon.evaluate._protocols import ADMIN_LEVEL_KEYS, Protocol, get_protocol
from pigeon.geo import RADII_KM

#: Row labels of the metrics table; the radii carry the paper's names.
LABELS = {
    "n": "images",
    **{f"acc_{r}km": f"{name} ({r:,} km)"
       for r, name in zip(RADII_KM, ("street", "city", "region", "country", "continent"), strict=True)},
    "median_km": "median error (km)",
    "mean_km": "mean error (km)",
    "geoscore_mean": "GeoGuessr score (mean)",
    "country_acc": "country accuracy",
    **{key: f"{key.removeprefix('acc_')} accuracy (nearest GeoNames place)" for key in ADMIN_LEVEL_KEYS},
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
    """Formatted metrics side by side: one row per metric (labelled), one column per run; the protocol first when
    a run names it, and the admin-level accuracies when a run has them."""
    keys = [k for k in ADMIN_LEVEL_KEYS if any(k in m for m in runs.values())]
    keys = list(METRIC_KEYS) + keys
    table = pd.DataFrame({name: [format_value(k, m.get(k)) for k in keys] for name, m in runs.items()},
                         index=[LABELS[k] for k in keys])
    if any("protocol" in m for m in runs.values()):
        table = pd.concat([pd.DataFrame({name: [m.get("protocol") or "n/a"] for name, m in runs.items()},
                                        index=["protocol"]), table])
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (metric names left, values right-aligned)."""
    header = ["metric", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(table.columns)]
    lines += ["| " + " | ".join([str(label), *row]) + " |"
              for label, row in zip(table.index, table.to_numpy(), strict=True)]
    return "\n".join(lines) + "\n"


def _write_md(path: Path, sections: list[tuple[str, str]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(f"{title}\n\n{body}" if title else body for title, body in sections))


@dataclass
class ReportContext:
    """What the breakdowns of one report share: the inputs, the per-image table, the metrics, the Markdown."""

    out: Path
    name: str
    protocol: Protocol
    pred_df: pd.DataFrame
    truth_df: pd.DataFrame
    joined: pd.DataFrame
    metrics: dict
    train_df: pd.DataFrame | None = None
    cells: Any = None
    seed: int = 0
    sections: list[tuple[str, str]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Breakdown:
    """One part of the report, used when ``applies``: ``annotate`` adds per-image columns to ``ctx.joined`` (they
    go into ``errors.parquet``) and Markdown sections; ``write`` writes its files after the core ones."""

    name: str
    applies: Callable[[ReportContext], bool]
    annotate: Callable[[ReportContext], None]
    write: Callable[[ReportContext], None]


def _has_countries(ctx: ReportContext) -> bool:
    try:
        from pigeon.geography import countries, country_of  # noqa: F401
    except ImportError:
        return False
    return True


def _annotate_train_distance(ctx: ReportContext) -> None:
    from pigeon.data import distance_to_rows_km

    truth = ctx.truth_df.assign(id=ctx.truth_df["id"].astype(str)).drop_duplicates("id").set_index("id")
    ctx.joined["train_distance_km"], _ = distance_to_rows_km(truth.loc[ctx.joined["id"]].reset_index(),
                                                             ctx.train_df, views=False)
    bands = ctx.state["bands"] = metrics_by_band(ctx.joined, protocol=ctx.protocol)
    ctx.sections.append(("## By distance to the nearest training location", to_markdown(
        metrics_table({label: row.to_dict() for label, row in bands.iterrows()}))))


def _write_train_distance(ctx: ReportContext) -> None:
    from pigeon.evaluate._plots import plot_error_vs_train_distance

    write_table(ctx.state["bands"].reset_index(), ctx.out / "by_train_distance.csv")
    plot_error_vs_train_distance(ctx.joined, ctx.out / "error_vs_train_distance.png", name=ctx.name)


def _annotate_country(ctx: ReportContext) -> None:
    from pigeon.geography import country_of

    ctx.joined["country"] = country_of(ctx.joined["lat"], ctx.joined["lon"])


def _write_country(ctx: ReportContext) -> None:
    from pigeon.evaluate._plots import plot_choropleth
    from pigeon.geography import countries

    table = metrics_by_group(ctx.joined, ctx.joined["country"], ctx.protocol)
    shapes = countries().rename(columns={"iso_a2": "key"})
    names = table["key"].map(shapes.set_index("key")["name"])
    write_table(table.rename(columns={"key": "country"}).assign(name=names), ctx.out / "by_country.csv")
    plot_choropleth(shapes, table, ctx.out / "by_country.png", name=ctx.name, what="country")


def _annotate_cell(ctx: ReportContext) -> None:
    ctx.joined["cell"] = ctx.cells.assign(ctx.joined["lat"], ctx.joined["lon"])


def _write_cell(ctx: ReportContext) -> None:
    from pigeon.evaluate._plots import plot_choropleth

    table = metrics_by_group(ctx.joined, ctx.joined["cell"], ctx.protocol)
    write_table(table.rename(columns={"key": "cell"}), ctx.out / "by_cell.csv")
    plot_choropleth(ctx.cells.table.assign(key=np.arange(len(ctx.cells))), table, ctx.out / "by_cell.png",
                    name=ctx.name, what="cell")


#: The report's breakdowns, in order: a new one is one entry (:func:`register_breakdown`).
BREAKDOWNS: list[Breakdown] = [
    Breakdown("train_distance", lambda ctx: ctx.train_df is not None, _annotate_train_distance, _write_train_distance),
    Breakdown("country", _has_countries, _annotate_country, _write_country),
    Breakdown("cell", lambda ctx: ctx.cells is not None, _annotate_cell, _write_cell),
]


def register_breakdown(breakdown: Breakdown) -> Breakdown:
    """Add (or replace, by name) a breakdown of every report."""
    BREAKDOWNS[:] = [b for b in BREAKDOWNS if b.name != breakdown.name] + [breakdown]
    return breakdown


def write_report(pred_df: pd.DataFrame, truth_df: pd.DataFrame, out_dir: str | os.PathLike,
                 config: dict | None = None, *, name: str | None = None, train_df: pd.DataFrame | None = None,
                 cells=None, seed: int = 0, protocol: str | Protocol | None = None) -> dict:
    """Evaluate predictions and write the report folder.

    Writes ``metrics.json`` (``protocol``, then :data:`METRIC_KEYS` and the protocol's extra metrics),
    ``meta.json`` (provenance), ``metrics.md`` (with the protocol's rules), ``errors.parquet`` (per image: truth,
    guess, ``distance_km``, ``geoscore`` when the protocol has one, and each breakdown's columns),
    ``error_cdf.png``, ``error_map.png`` (arcs for a seeded sample), and each :data:`BREAKDOWNS` entry that
    applies: ``by_country.csv`` / ``by_country.png`` (median error and accuracy within 750 km per country of the
    truth), with ``train_df`` ``by_train_distance.csv`` / ``error_vs_train_distance.png`` (metrics by distance band
    to the nearest training location) and with ``cells`` ``by_cell.csv`` / ``by_cell.png``.

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
        protocol: whose definitions to score by (default ``"pigeon"``; see :data:`pigeon.evaluate.PROTOCOLS`).

    Returns:
        The metrics dict.
    """
    from pigeon.evaluate._plots import plot_error_cdf, plot_error_map

    rules = get_protocol(protocol)
    out = Path(out_dir)
    joined = match_predictions(pred_df, truth_df, rules)
    metrics = summarize(joined, rules)
    ctx = ReportContext(out, name or out.resolve().name, rules, pred_df, truth_df, joined, metrics, train_df, cells,
                        seed, sections=[("", to_markdown(metrics_table({name or out.resolve().name: metrics}))
                                         + f"\nProtocol `{rules.name}`: {rules.rules}.\n")])
    active = [b for b in BREAKDOWNS if b.applies(ctx)]
    for breakdown in active:
        breakdown.annotate(ctx)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    meta = provenance("evaluation", {**dict(config or {}), "protocol": rules.name})
    meta.update(name=ctx.name, n_train=None if train_df is None else len(train_df))
    write_json(out / "meta.json", meta)
    scores = {} if rules.geoscore is None else {"geoscore": rules.geoscore(joined["distance_km"])}
    write_table(joined.assign(**scores), out / "errors.parquet")
    plot_error_cdf(joined["distance_km"], out / "error_cdf.png", metrics, name=ctx.name)
    plot_error_map(joined, out / "error_map.png", seed=seed, name=ctx.name)
    for breakdown in active:
        breakdown.write(ctx)
    _write_md(out / "metrics.md", ctx.sections)
    return metrics
