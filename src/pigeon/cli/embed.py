"""``pigeon embed``: embed a manifest's images with a backbone into a resumable store."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app


@app.command("embed")
def embed_command(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or .csv) with id and image columns."),
    out: Path = typer.Option(..., "--out", "-o", help="Output embeddings folder (created, or resumed)."),
    backbone: str = typer.Option(None, "--backbone", "-b", help="Backbone name (see 'pigeon backbones list'); "
                                 "default: the offline EfficientNet-Lite0."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per forward pass."),
    workers: int = typer.Option(None, "--workers", help="Image-decoding processes (default: spare CPU cores)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float16 or bfloat16."),
    shard_size: int = typer.Option(4096, "--shard-size", help="Rows per shard (the unit of resumption)."),
    split: str = typer.Option(None, "--split", help="Embed only rows of this split."),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Decompression-bomb limit in pixels."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store made with other settings."),
) -> None:
    """Embed every image (each view of multi-view rows) and save float16 shards, an index and meta.json.

    Rerun the same command after an interruption to continue from the last complete shard.

    Example: pigeon embed photos.parquet --backbone efficientnet:lite0 -o emb/
    """
    from pigeon.backbones import DEFAULT_BACKBONE
    from pigeon.data import read_manifest, select_split
    from pigeon.embed import embed_manifest
    from pigeon.images import set_max_pixels

    if max_pixels is not None:
        set_max_pixels(max_pixels)
    df = select_split(read_manifest(manifest, require_coords=False), split)
    emb = embed_manifest(df, backbone or DEFAULT_BACKBONE, out, batch_size=batch_size, num_workers=workers,
                         shard_size=shard_size, overwrite=overwrite, device=device, dtype=dtype)
    meta = emb.meta
    typer.echo(f"embedded {meta['n_embedded']} of {len(df)} rows ({meta['n_views']} images) with {emb.backbone}, "
               f"dim {emb.dim} -> {out}")
    if meta["n_failed_images"]:
        typer.echo(f"{meta['n_failed_images']} unreadable image(s) skipped; see {out / 'failed.csv'}")
