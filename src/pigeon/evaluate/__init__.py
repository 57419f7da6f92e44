"""Evaluation: metrics at the paper's radii, GeoGuessr score, country accuracy, report folders, comparison."""

from pigeon.evaluate._compare import compare, read_metrics
from pigeon.evaluate._metrics import (
    METRIC_KEYS, compute_metrics, country_accuracy, match_predictions, mean_baseline,
)
from pigeon.evaluate._report import metrics_table, plot_error_cdf, plot_error_map, to_markdown, write_report

__all__ = [
    "METRIC_KEYS", "compare", "compute_metrics", "country_accuracy", "match_predictions", "mean_baseline", "metrics_table",
    "plot_error_cdf", "plot_error_map", "read_metrics", "to_markdown", "write_report",
]
