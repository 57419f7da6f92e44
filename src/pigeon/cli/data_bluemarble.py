"""``pigeon data bluemarble``: generate the embedded Blue Marble geolocation dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import data_app
from pigeon.cli.data_split import BUFFER_KM, BY, CELLS, FRACTIONS, REGIONS, split_config, split_summary


@data_app.command("bluemarble")
def bluemarble_command(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: manifest.parquet, meta.json, images/."),
    n: int = typer.Option(1000, "-n", "--n", help="Number of locations."),
    views: int = typer.Option(4, "--views", help="Views per location: 1, 2, 4 or 8."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same bytes)."),
    size: int = typer.Option(128, "--size", help="Side of each view in pixels."),
    patch_km: float = typer.Option(640.0, "--patch-km", help="Ground extent of each view's side in km."),
    jitter_km: float = typer.Option(20.0, "--jitter-km", help="Random shift of each view centre, up to this (km)."),
    view_offset_km: float = typer.Option(None, "--view-offset-km", help="Distance from the location to each view "
                                         "centre (default 0 for one view, patch-km/2 for several)."),
    populated: float = typer.Option(0.5, "--populated", help="Share of locations weighted by night lights; "
                                    "the rest are uniform over land."),
    south: float = typer.Option(-60.0, "--south", help="Southern latitude limit (degrees)."),
    north: float = typer.Option(80.0, "--north", help="Northern latitude limit (degrees)."),
    fractions: str = FRACTIONS,
    by: str = BY,
    buffer_km: float = BUFFER_KM,
    regions: int = REGIONS,
    cells: Path = CELLS,
    rotate: bool = typer.Option(True, "--rotate/--no-rotate", help="Random compass heading per location."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in OUT."),
) -> None:
    """Cut views of NASA's Blue Marble around random land locations: a real geolocation task.

    Example: pigeon data bluemarble -o bluemarble --n 1000 --views 4 --seed 0
    """
    from pigeon.data.bluemarble import MANIFEST_NAME, make_bluemarble_dataset

    df = make_bluemarble_dataset(
        out, n=n, views=views, seed=seed, size_px=size, patch_km=patch_km, jitter_km=jitter_km,
        view_offset_km=view_offset_km, rotate=rotate, populated_fraction=populated, lat_range=(south, north),
        split=split_config(by, fractions, buffer_km, seed, regions, cells, always=True), overwrite=overwrite,
    )
    typer.echo(f"{len(df)} locations x {views} view(s) of {size} px / {patch_km:g} km ({split_summary(df)}) "
               f"-> {out / MANIFEST_NAME}")
