"""``pigeon data ingest`` and ``pigeon data import``: make a manifest from photos or from a benchmark's CSV."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import data_app
from pigeon.cli.data_split import BUFFER_KM, BY, CELLS, FRACTIONS, REGIONS, SEED, split_config, split_summary


@data_app.command("ingest")
def ingest_command(
    photos_dir: Path = typer.Argument(..., help="Folder of photos, searched recursively."),
    out: Path = typer.Option(..., "-o", "--out", help="Output manifest (.parquet or .csv)."),
    fractions: str = FRACTIONS,
    by: str = BY,
    buffer_km: float = BUFFER_KM,
    seed: int = SEED,
    regions: int = REGIONS,
    cells: Path = CELLS,
) -> None:
    """Read EXIF GPS, heading and capture time; photos without GPS go to OUT-unlocated.

    Any split option adds a split column (see 'pigeon data split').

    Example: pigeon data ingest ~/Pictures -o photos.parquet --fractions 0.8,0.1,0.1 --by region --buffer-km 50
    """
    from pigeon.data.ingest import ingest_photos

    result = ingest_photos(photos_dir, out, split=split_config(by, fractions, buffer_km, seed, regions, cells))
    for path, reason in result.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    if result.manifest_path is not None:
        counts = f" ({split_summary(result.located)})" if "split" in result.located.columns else ""
        typer.echo(f"{len(result.located)} photos with GPS{counts} -> {result.manifest_path}")
    else:
        typer.echo(f"no photo has EXIF GPS; no manifest written to {out}")
    if result.unlocated_path is not None:
        typer.echo(f"{len(result.unlocated)} photos without GPS -> {result.unlocated_path}")
    if result.skipped:
        typer.echo(f"{len(result.skipped)} unreadable file(s) skipped (listed on stderr)")


@data_app.command("import")
def import_command(
    file: str = typer.Argument(..., help="The benchmark's metadata CSV; for osv5m-wds, its shards (a pattern such "
                               "as 'osv5m-wds/train/{0000..0489}.tar', any fsspec URL, or a folder)."),
    fmt: str = typer.Option(..., "--format", "-f", help="im2gps3k, yfcc4k, osv5m, or osv5m-wds (OSV-5M's "
                            "WebDataset copy: rows from the shards' json)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output manifest (.parquet or .csv)."),
    images: Path = typer.Option(None, "--images", help="Image folder (default: the benchmark's usual folder "
                                "next to FILE)."),
    split: str = typer.Option(None, "--split", help="Split label (default: FILE's name if train/val/test, "
                              "else test)."),
) -> None:
    """Import IM2GPS3k / YFCC4k / OSV-5M metadata (or OSV-5M's WebDataset shards) as a manifest.

    Example: pigeon data import im2gps3k_places365.csv --format im2gps3k -o im2gps3k.parquet
    """
    import warnings

    from pigeon.data import import_benchmark, write_manifest

    if fmt == "osv5m-wds":
        from pigeon.data.shards import import_shards

        df = import_shards(file, "osv5m-wds", split=split)
        write_manifest(df, out)
        typer.echo(f"imported {len(df)} osv5m-wds rows from their shards' json -> {out}; embed the shards "
                   "themselves with 'pigeon embed'")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = import_benchmark(Path(file), fmt, image_dir=images, split=split, out_dir=out.resolve().parent)
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    write_manifest(df, out)
    typer.echo(f"imported {len(df)} {fmt} rows (split {df['split'].iat[0]}) -> {out}")
