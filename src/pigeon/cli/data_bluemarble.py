"""``pigeon data bluemarble``: generate the embedded Blue Marble geolocation dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import data_app
from pigeon.cli._options import described, show
from pigeon.cli.data_split import BUFFER_KM, BY, CELLS, FRACTIONS, REGIONS, split_config, split_summary
from pigeon.data._config import BlueMarbleConfig


def _bm(text: str, name: str, shown=show) -> str:
    return described(text, BlueMarbleConfig, name, shown=shown)


@data_app.command("bluemarble")
def bluemarble_command(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: manifest.parquet, meta.json, images/."),
    n: int = typer.Option(None, "-n", "--n", help=_bm("Number of locations.", "n")),
    views: int = typer.Option(None, "--views", help=_bm("Views per location: 1, 2, 4 or 8.", "views")),
    seed: int = typer.Option(None, "--seed", help=_bm("Random seed (same seed, same bytes).", "seed")),
    size: int = typer.Option(None, "--size", help=_bm("Side of each view in pixels.", "size_px")),
    patch_km: float = typer.Option(None, "--patch-km", help=_bm("Ground extent of each view's side in km.",
                                                                "patch_km")),
    jitter_km: float = typer.Option(None, "--jitter-km", help=_bm("Random shift of each view centre, up to this "
                                                                  "(km).", "jitter_km")),
    view_offset_km: float = typer.Option(None, "--view-offset-km", help="Distance from the location to each view "
                                         "centre (default 0 for one view, patch-km/2 for several)."),
    populated: float = typer.Option(None, "--populated", help=_bm("Share of locations weighted by night lights; "
                                                                  "the rest are uniform over land.",
                                                                  "populated_fraction")),
    south: float = typer.Option(None, "--south", help=_bm("Southern latitude limit (degrees).", "lat_range",
                                                          lambda r: show(r[0]))),
    north: float = typer.Option(None, "--north", help=_bm("Northern latitude limit (degrees).", "lat_range",
                                                          lambda r: show(r[1]))),
    fractions: str = FRACTIONS,
    by: str = BY,
    buffer_km: float = BUFFER_KM,
    regions: int = REGIONS,
    cells: Path = CELLS,
    rotate: bool = typer.Option(None, "--rotate/--no-rotate", help=_bm("Random compass heading per location.",
                                                                         "rotate")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in OUT."),
) -> None:
    """Cut views of NASA's Blue Marble around random land locations: a real geolocation task.

    Example: pigeon data bluemarble -o bluemarble --n 1000 --views 4 --seed 0
    """
    from pigeon.data.bluemarble import MANIFEST_NAME, make_bluemarble_dataset

    config = BlueMarbleConfig().with_options(n=n, views=views, seed=seed, size_px=size, patch_km=patch_km,
                                             jitter_km=jitter_km, view_offset_km=view_offset_km, rotate=rotate,
                                             populated_fraction=populated)
    if south is not None or north is not None:
        low, high = config.lat_range
        config = config.replace(lat_range=(low if south is None else south, high if north is None else north))
    split = split_config(by, fractions, buffer_km, config.seed, regions, cells, always=True)
    df = make_bluemarble_dataset(out, config, split=split, overwrite=overwrite)
    typer.echo(f"{len(df)} locations x {config.views} view(s) of {config.size_px} px / {config.patch_km:g} km "
               f"({split_summary(df)}) -> {out / MANIFEST_NAME}")
