"""``pigeon evaluate``: metrics, figures and a report folder for a predictions file."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app


def print_table(table, title: str) -> None:
    """Print a formatted metrics table (rows = metrics, columns = runs) with rich."""
    from rich.console import Console
    from rich.table import Table

    out = Table(title=title)
    out.add_column("metric")
    for name in table.columns:
        out.add_column(str(name), justify="right")
    for label, row in zip(table.index, table.to_numpy(), strict=True):
        out.add_row(str(label), *row)
    Console().print(out)


@app.command("evaluate")
def evaluate_command(
    predictions: Path = typer.Option(..., "--predictions", "-p", help="CSV/Parquet: id, lat, lon [, rank, prob]."),
    truth: Path = typer.Option(..., "--truth", "-t", help="Manifest with the true lat/lon per id."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder (created)."),
    split: str = typer.Option(None, "--split", help="Evaluate only the truth rows of this split."),
    compare_dirs: list[Path] = typer.Option(
        [], "--compare", help="Another report folder to show side by side (repeatable)."),
) -> None:
    """Accuracy at 1/25/200/750/2500 km, median/mean km, GeoGuessr score, country accuracy, error CDF and map.

    Example: pigeon evaluate --predictions preds.csv --truth test.parquet -o report/ --compare baseline/
    """
    from pigeon.data import read_manifest, read_table, select_split
    from pigeon.evaluate import compare, metrics_table, write_report

    others = compare(compare_dirs) if compare_dirs else None  # fail on a bad folder before writing anything
    truth_df = select_split(read_manifest(truth), split)
    metrics = write_report(read_table(predictions, "predictions file"), truth_df, out,
                           config={"predictions": str(predictions), "truth": str(truth), "split": split})
    runs = {out.name or str(out): metrics}
    if others is not None:
        runs.update({name: row.to_dict() for name, row in others.iterrows() if name not in runs})
    print_table(metrics_table(runs), title=f"pigeon evaluate -> {out}")
