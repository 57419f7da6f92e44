"""``pigeon cells build|plot|stats|export``: make and inspect geocells."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cells._config import CellConfig
from pigeon.cli._app import cells_app
from pigeon.cli._options import described
from pigeon.presets import preset_help
from pigeon.errors import InputError


def _cells(text: str, name: str) -> str:
    return described(text, CellConfig, name, stage="cells")


def _parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"--bbox {text!r}: write LAT_MIN,LON_MIN,LAT_MAX,LON_MAX, e.g. --bbox 35,-10,60,30")
    return values  # type: ignore[return-value]


@cells_app.command("build")
def build_command(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or .csv) with lat/lon."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (cells.parquet + meta.json)."),
    method: str = typer.Option(None, help=_cells("semantic (admin areas + OPTICS/Voronoi) or naive (rectangles).",
                                                 "method")),
    preset: str = typer.Option(None, help=preset_help()),
    min_size: int = typer.Option(None, "--min-size", help=_cells("Fewest training points per cell.", "min_size")),
    max_size: int = typer.Option(None, "--max-size", help=_cells("Most training points per cell.", "max_size")),
    boundaries: Path = typer.Option(
        None, help="GADM 4.1 GeoPackage, or GeoParquet/GeoJSON areas (default: offline GeoNames-derived admin-2)."),
    split: str = typer.Option(None, help="Rows to use (default: train if the manifest has a split column, else all)."),
    seed: int = typer.Option(None, help=_cells("Random seed (fusion order, samples of large cells).", "seed")),
    rules: str = typer.Option(
        None, "--rules",
        help=_cells("Splitting of cells above --max-size: bounded (the paper's OPTICS rounds, then median cuts until "
                    "every cell keeps its bounds) or paper (the OPTICS rounds alone, exactly as the paper).", "rules")),
    jobs: int = typer.Option(
        None, "--jobs",
        help="Processes that split oversized cells, -1 for one per CPU (default: this process only). The cells are "
             "the same for any number; splitting is most of the build from about a million points."),
    address: str = typer.Option(
        None, "--address",
        help="Split the cells on this Ray cluster (auto, ray://HOST:10001) instead of local processes; --jobs then "
             "caps the tasks in flight (pip install 'pigeon-geo\\[scale]')."),
) -> None:
    """Build geocells from the training points of a manifest (only its lat, lon and split columns are read)."""
    from pigeon.cells import GeoCells
    from pigeon.data import read_points, training_rows

    points = read_points(manifest, split=split)
    if split is None:
        points = training_rows(points)
    cells = GeoCells.build(points["lat"].to_numpy(), points["lon"].to_numpy(), preset=preset, method=method,
                           min_size=min_size, max_size=max_size, boundaries=boundaries, seed=seed, rules=rules,
                           n_jobs=jobs, ray_address=address)
    cells.save(out)
    cfg = cells.meta["config"]
    across = f", {cfg['cells_across_admin1']} across admin-1 borders" if "cells_across_admin1" in cfg else ""
    typer.echo(f"{len(cells)} {cfg['method']} cells from {len(points)} points in {cfg['build_seconds']:.1f} s "
               f"({len(cfg['undersized_cells'])} below {cfg['min_size']}, {len(cfg['oversized_cells'])} above "
               f"{cfg['max_size']}{across}) -> {out}")


@cells_app.command("plot")
def plot_command(
    cells_dir: Path = typer.Argument(..., help="Geocells folder (from 'pigeon cells build')."),
    out: Path = typer.Option(..., "-o", "--out", help="Output PNG."),
    bbox: str = typer.Option(None, help="Zoom: LAT_MIN,LON_MIN,LAT_MAX,LON_MAX degrees."),
) -> None:
    """Draw the cells on a world map, one colour per cell."""
    from pigeon.cells import GeoCells, plot_cells

    plot_cells(GeoCells.load(cells_dir), out, bbox=_parse_bbox(bbox))
    typer.echo(f"wrote {out}")


@cells_app.command("stats")
def stats_command(
    cells_dir: Path = typer.Argument(..., help="Geocells folder (from 'pigeon cells build')."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Cell count, size distribution (training points), area distribution (km²) and parts per cell."""
    import json

    from pigeon.cells import GeoCells, cell_stats

    stats = cell_stats(GeoCells.load(cells_dir))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    typer.echo(f"{stats['n_cells']} {stats['method']} cells, {stats['n_train']} training points, "
               f"{stats['countries']} countries")
    typer.echo(f"sizes {stats['min_size']}-{stats['max_size']}: {stats['below_min_size']} below "
               f"({stats['below_min_size_country_smaller']} in countries with fewer points), "
               f"{stats['above_max_size']} above")
    parts = stats["parts"]
    typer.echo(f"parts per cell: median {parts['median']:.0f}, max {parts['max']:.0f}; "
               f"{stats['multipart_cells']} cells with several parts: {stats['cells_with_islands']} with islands, "
               f"{stats['cells_with_exclaves']} with exclaves")
    typer.echo(f"{'':10}" + "".join(f"{q:>14}" for q in ("min", "p10", "median", "p90", "max")))
    for name, key in (("points", "size"), ("km²", "area_km2")):
        d = stats[key]
        typer.echo(f"{name:10}" + "".join(f"{d[q]:>14,.1f}" for q in ("min", "p10", "median", "p90", "max")))


@cells_app.command("export")
def export_command(
    cells_dir: Path = typer.Argument(..., help="Geocells folder (from 'pigeon cells build')."),
    out: Path = typer.Option(..., "-o", "--out", help="Output GeoJSON."),
) -> None:
    """Export the cells as GeoJSON for GIS tools."""
    from pigeon.cells import GeoCells, export_geojson

    cells = GeoCells.load(cells_dir)
    export_geojson(cells, out)
    typer.echo(f"exported {len(cells)} cells -> {out}")
