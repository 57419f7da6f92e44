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
    truth: Path = typer.Option(..., "--truth", "-t", help="Manifest (or any table) with the true lat/lon per id."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder (created)."),
    split: str = typer.Option(None, "--split", help="Evaluate only the truth rows of this split."),
    columns: str = typer.Option(None, "--columns", help="Another tool's column names in the predictions file: "
                                "id=img_id,lat=predicted_lat,lon=predicted_long."),
    truth_columns: str = typer.Option(None, "--truth-columns", help="The same for the truth file."),
    train: Path = typer.Option(None, "--train", help="Training manifest (its train split when it has one): "
                               "adds the metrics by distance to the nearest training location."),
    cells: Path = typer.Option(None, "--cells", help="Geocells folder (e.g. MODEL/cells): adds maps by cell."),
    name: str = typer.Option(None, "--name", help="Run name in the figure titles (default: the OUT folder's name)."),
    protocol: str = typer.Option(None, "--protocol", help="Whose definitions to score by (distance, < or <=, GeoScore "
                                 "rounding, country rule): pigeon (the default), osv5m, plonk, geoclip or georanker; "
                                 "docs/protocols.md has them side by side."),
    compare_dirs: list[Path] = typer.Option(
        [], "--compare", help="Another report folder to compare with (repeatable): writes OUT/comparison.md "
        "and OUT/comparison_cdf.png."),
) -> None:
    """Accuracy at 1/25/200/750/2500 km, median/mean km, GeoGuessr score, country accuracy, error CDF and maps.

    Example: pigeon evaluate --predictions preds.csv --truth test.parquet -o report/ --train train.parquet
    --compare baseline/
    """
    from pigeon.cells import GeoCells
    from pigeon.data import read_manifest, select_split, training_rows
    from pigeon.evaluate import (
        compare, get_protocol, metrics_table, read_predictions, read_truth, write_comparison, write_report,
    )

    rules = get_protocol(protocol)  # an unknown name fails before any work
    if compare_dirs:
        compare(compare_dirs)  # fail on a bad folder before writing anything
    pred_df = read_predictions(predictions, columns)
    truth_df = select_split(read_truth(truth, truth_columns), split)
    train_df = training_rows(read_manifest(train)) if train is not None else None
    geocells = GeoCells.load(cells) if cells is not None else None
    config = {"predictions": str(predictions), "truth": str(truth), "split": split, "columns": columns,
              "truth_columns": truth_columns, "train": None if train is None else str(train),
              "cells": None if cells is None else str(cells)}
    write_report(pred_df, truth_df, out, config=config, name=name, train_df=train_df, cells=geocells, protocol=rules)
    dirs = [out, *(d for d in compare_dirs if Path(d).resolve() != out.resolve())]
    table = compare(dirs)
    if name:
        table.index = [name, *table.index[1:]]
    if compare_dirs:
        write_comparison(dirs, out, names=list(table.index))
    print_table(metrics_table({run: row.to_dict() for run, row in table.iterrows()}), title=f"pigeon evaluate -> {out}")
    if compare_dirs:
        typer.echo(f"comparison of {len(dirs)} reports -> {out / 'comparison.md'}, {out / 'comparison_cdf.png'}")
