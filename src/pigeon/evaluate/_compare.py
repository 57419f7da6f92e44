"""Side-by-side comparison of evaluation reports."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pigeon._io import read_json
from pigeon.errors import InputError
from pigeon.evaluate._metrics import METRIC_KEYS


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
        DataFrame indexed by run name with the :data:`METRIC_KEYS` columns.
    """
    if not report_dirs:
        raise InputError("compare needs at least one report folder")
    dirs = [Path(d) for d in report_dirs]
    names = [d.name or str(d) for d in dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in dirs]
    rows = [read_metrics(d) for d in dirs]
    return pd.DataFrame([[m[k] for k in METRIC_KEYS] for m in rows], index=pd.Index(names, name="run"),
                        columns=list(METRIC_KEYS))
