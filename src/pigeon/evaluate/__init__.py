"""Evaluation: metrics at the paper's radii, GeoGuessr score, country accuracy, breakdowns, reports, comparison,
under each peer's own protocol (``PROTOCOLS``)."""

from pigeon.evaluate._compare import compare, read_metrics, write_comparison
from pigeon.evaluate._inputs import read_predictions, read_truth
from pigeon.evaluate._metrics import (
    DISTANCE_BANDS_KM, GROUP_KEYS, METRIC_KEYS, band_labels, compute_metrics, country_accuracy, distance_bands,
    match_predictions, mean_baseline, metrics_by_band, metrics_by_group,
)
from pigeon.evaluate._plots import plot_choropleth, plot_error_cdf, plot_error_map, plot_error_vs_train_distance
from pigeon.evaluate._protocols import (
    ADMIN_LEVEL_KEYS, DEFAULT_PROTOCOL, PROTOCOLS, Protocol, get_protocol, register_protocol,
)
from pigeon.evaluate._report import (
    BREAKDOWNS, Breakdown, ReportContext, metrics_table, register_breakdown, to_markdown, write_report,
)

__all__ = [
    "ADMIN_LEVEL_KEYS", "BREAKDOWNS", "DEFAULT_PROTOCOL", "DISTANCE_BANDS_KM", "GROUP_KEYS", "METRIC_KEYS",
    "PROTOCOLS", "Breakdown", "Protocol", "ReportContext", "band_labels", "compare", "compute_metrics",
    "country_accuracy", "distance_bands", "get_protocol", "match_predictions", "mean_baseline", "metrics_by_band",
    "metrics_by_group", "metrics_table", "plot_choropleth", "plot_error_cdf", "plot_error_map",
    "plot_error_vs_train_distance", "read_metrics", "read_predictions", "read_truth", "register_breakdown",
    "register_protocol", "to_markdown", "write_comparison", "write_report",
]
