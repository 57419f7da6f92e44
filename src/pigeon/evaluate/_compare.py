"""Side-by-side comparison of evaluation reports: a table, ``comparison.md`` and one error-CDF plot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pigeon._io import atomic_path, read_json, read_table
from pigeon.errors import InputError
from pigeon.evaluate._metrics import METRIC_KEYS
from pigeon.evaluate._protocols import ADMIN_LEVEL_KEYS


def read_metrics(report_dir: str | os.PathLike) -> dict:
    """The ``metrics.json`` of a report folder made by :func:`write_report`."""
    path = Path(report_dir) / "metrics.json"
    metrics = read_json(path, hint="pass a report folder made by 'pigeon evaluate -o DIR'")
    missing = [k for k in METRIC_KEYS if k not in metrics] if isinstance(metrics, dict) else list(METRIC_KEYS)
    if missing:
        raise InputError(f"{path}: not a pigeon metrics file (missing {', '.join(missing)}); rerun pigeon evaluate")
    return metrics


def compare(report_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Metrics of several reports, one row per report.

    Args:
        report_dirs: report folders; rows are named by folder name (by full path where names repeat).

    Returns:
        DataFrame indexed by run name: ``protocol`` (None for reports made before protocols), the
        :data:`METRIC_KEYS` and the admin-level accuracies any report has.
    """
    if not report_dirs:
        raise InputError("compare needs at least one report folder")
    dirs = [Path(d) for d in report_dirs]
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in dirs]
    rows = [read_metrics(d) for d in dirs]
    keys = ["protocol", *METRIC_KEYS, *(k for k in ADMIN_LEVEL_KEYS if any(k in m for m in rows))]
    return pd.DataFrame([[m.get(k) for k in keys] for m in rows], index=pd.Index(names, name="run"), columns=keys)


def write_comparison(report_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                     names: Sequence[str] | None = None) -> pd.DataFrame:
    """Write ``comparison.md`` (metrics side by side) and ``comparison_cdf.png`` (an error CDF per report).

    Args:
        report_dirs: report folders made by :func:`write_report` (their ``errors.parquet`` gives the curves).
        out_dir: where the two files go (created).
        names: run names (default as in :func:`compare`).

    Returns:
        The table of :func:`compare`, indexed by run name.
    """
    from pigeon.evaluate._plots import plot_error_cdf
    from pigeon.evaluate._report import metrics_table, to_markdown

    table = compare(report_dirs)
    if names is not None:
        table.index = pd.Index(list(names), name="run")
    errors = {name: read_table(Path(d) / "errors.parquet", "report errors file")["distance_km"].to_numpy()
              for name, d in zip(table.index, report_dirs)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "comparison.md") as tmp:
        tmp.write_text(to_markdown(metrics_table({name: row.to_dict() for name, row in table.iterrows()})))
    plot_error_cdf(errors, out / "comparison_cdf.png")
    return table
