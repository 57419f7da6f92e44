"""``pigeon data shard``: write a manifest's images (or an embeddings store) as WebDataset tar shards."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import data_app


@data_app.command("shard")
def shard_command(
    source: Path = typer.Argument(..., metavar="MANIFEST|EMBEDDINGS", help="A manifest (.parquet or .csv), or an "
                                  "embeddings folder from 'pigeon embed' (exported as .npy + json shards)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder of shards (local; created)."),
    size: int = typer.Option(10_000, "--size", help="Rows per shard."),
    resize: int = typer.Option(None, "--resize", help="Manifests: store JPEG views pre-resized to this shortest "
                               "edge (e.g. 512); default: the original files' bytes."),
    split: str = typer.Option(None, "--split", help="Manifests: only rows of this split."),
    max_member_mb: float = typer.Option(64.0, "--max-member-mb", help="Image files larger than this are listed "
                                        "as failures, not copied."),
    manifest: Path = typer.Option(None, "--manifest", help="Embeddings: add lat, lon and split from this manifest "
                                  "to each sample's json."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace shards written with other settings."),
) -> None:
    """Write WebDataset shards (sample = NNNNNNNNN.jpg + .json), index.parquet, failed.csv and meta.json.

    Then embed them with: pigeon embed "OUT/shard-{000000..000099}.tar" -o emb/

    Examples:
      pigeon data shard photos.parquet -o shards/ --size 10000 --resize 512
      pigeon data shard emb/ -o emb-wds/ --manifest photos.parquet   (read with plain webdataset)
    """
    from pigeon.data import read_manifest, select_split
    from pigeon.embed._store import META

    if (source / META).is_file():
        from pigeon.embed import Embeddings, export_shards

        extra = read_manifest(manifest, require_coords=False) if manifest is not None else None
        paths = export_shards(Embeddings.load(source), out, size=size, manifest=extra)
        typer.echo(f"exported {source} as {len(paths)} shard(s) of .npy + .json -> {out}")
        return
    from pigeon.data.shards import write_shards

    df = select_split(read_manifest(source, require_coords=False), split)
    result = write_shards(df, out, size=size, resize=resize, max_member_bytes=int(max_member_mb * 2**20),
                          overwrite=overwrite)
    typer.echo(f"wrote {result.n_rows} of {len(df)} rows as {result.n_shards} shard(s) -> {result.pattern}")
    if len(result.failed):
        typer.echo(f"{len(result.failed)} unreadable image(s) left out; see {out / 'failed.csv'}")
