"""``pigeon data enrich`` and ``pigeon data captions``: auxiliary geodata and synthetic captions."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import data_app
from pigeon.errors import InputError


def _parse_rasters(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        column, sep, path = item.partition("=")
        if not sep or not column or not path:
            raise InputError(f"--raster {item!r}: write COLUMN=PATH, e.g. --raster elevation_m=srtm.tif")
        out[column] = path
    return out


@data_app.command("enrich")
def enrich_command(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or .csv) with lat/lon."),
    out: Path = typer.Option(..., "-o", "--out", help="Output manifest (.parquet or .csv)."),
    raster: list[str] = typer.Option(
        [], "--raster", help="COLUMN=GeoTIFF: read a numeric column from a finer raster (needs rasterio)."),
    max_coast_km: float = typer.Option(25.0, help="Points at sea this close to a coast get that country (km)."),
) -> None:
    """Add country, admin areas, town, Köppen, elevation, population, climate, driving side, land, season."""
    from pigeon.data import read_manifest, write_manifest
    from pigeon.geography import enrich

    df = enrich(read_manifest(manifest), rasters=_parse_rasters(raster), max_coast_km=max_coast_km)
    write_manifest(df, out)
    n_country = int(df["country"].notna().sum())
    typer.echo(f"enriched {len(df)} rows ({n_country} in a country, {int(df['land'].sum())} on land) -> {out}")


@data_app.command("captions")
def captions_command(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or .csv), enriched or with lat/lon."),
    out: Path = typer.Option(..., "-o", "--out", help="Output manifest with a 'caption' column."),
    style: str = typer.Option("streetview", help="Caption templates: streetview (PIGEON) or photo (PIGEOTTO)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write the paper's synthetic pretraining captions, one per row."""
    from pigeon.data import read_manifest, write_manifest
    from pigeon.geography import captions

    df = read_manifest(manifest)
    df["caption"] = captions(df, style=style, seed=seed)
    write_manifest(df, out)
    typer.echo(f"captioned {len(df)} rows ({style}, seed {seed}) -> {out}")
