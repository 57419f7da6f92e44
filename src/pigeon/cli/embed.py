"""``pigeon embed``: embed a manifest's images with a backbone into a resumable store."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app
from pigeon.embed._config import BATCH_SIZE, SHARD_SIZE


@app.command("embed")
def embed_command(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or .csv) with id and image columns."),
    out: Path = typer.Option(..., "--out", "-o", help="Output embeddings folder (created, or resumed)."),
    backbone: str = typer.Option(None, "--backbone", "-b", help="Backbone name (see 'pigeon backbones list'); "
                                 "default: the offline EfficientNet-Lite0."),
    batch_size: int = typer.Option(BATCH_SIZE, "--batch-size", help="Images per forward pass."),
    workers: int = typer.Option(None, "--workers", help="Image-decoding processes (default: spare CPU cores; "
                                "with --engine ray: per model replica, default 0)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default: CUDA when available)."),
    dtype: str = typer.Option(None, "--dtype", help="float32, float16 or bfloat16 (default: full precision)."),
    shard_size: int = typer.Option(SHARD_SIZE, "--shard-size", help="Rows per shard (the unit of resumption)."),
    split: str = typer.Option(None, "--split", help="Embed only rows of this split."),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Decompression-bomb limit in pixels."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store made with other settings."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (model replicas on a Ray "
                               "cluster; pip install 'pigeon-geo\\[scale]')."),
    address: str = typer.Option(None, "--address", help="Ray cluster to join (auto, ray://HOST:10001); default: "
                                "RAY_ADDRESS, else a local Ray instance. Needs --engine ray."),
    num_workers: int = typer.Option(None, "--num-workers", help="Model replicas on Ray (default: one per GPU, "
                                    "else per CPU). Needs --engine ray."),
    cpus_per_worker: float = typer.Option(None, "--cpus-per-worker", help="CPUs per replica (default: 1 + "
                                          "--workers). Needs --engine ray."),
) -> None:
    """Embed every image (each view of multi-view rows) and save float16 shards, an index and meta.json.

    Rerun the same command after an interruption to continue from the last complete shard (with either engine).

    Example: pigeon embed photos.parquet --backbone efficientnet:lite0 -o emb/

    On a Ray cluster: pigeon embed photos.parquet -o /shared/emb --engine ray --address auto --num-workers 8
    """
    from pigeon.backbones import DEFAULT_BACKBONE
    from pigeon.data import read_manifest, select_split
    from pigeon.embed import embed_manifest, embed_manifest_ray
    from pigeon.errors import InputError
    from pigeon.images import set_max_pixels

    ray_only = {"--address": address, "--num-workers": num_workers, "--cpus-per-worker": cpus_per_worker}
    if engine not in ("local", "ray"):
        raise InputError(f"unknown engine {engine!r}; use local or ray")
    if engine == "local" and any(v is not None for v in ray_only.values()):
        used = ", ".join(k for k, v in ray_only.items() if v is not None)
        raise InputError(f"{used} only apply to --engine ray; add --engine ray or drop them")
    if max_pixels is not None:
        set_max_pixels(max_pixels)
    df = select_split(read_manifest(manifest, require_coords=False), split)
    if engine == "ray":
        emb = embed_manifest_ray(df, backbone or DEFAULT_BACKBONE, out, num_workers=num_workers, address=address,
                                 batch_size=batch_size, shard_size=shard_size, decode_workers=workers or 0,
                                 cpus_per_worker=cpus_per_worker, overwrite=overwrite, device=device, dtype=dtype)
    else:
        emb = embed_manifest(df, backbone or DEFAULT_BACKBONE, out, batch_size=batch_size, num_workers=workers,
                             shard_size=shard_size, overwrite=overwrite, device=device, dtype=dtype)
    meta = emb.meta
    typer.echo(f"embedded {meta['n_embedded']} of {len(df)} rows ({meta['n_views']} images) with {emb.backbone}, "
               f"dim {emb.dim} -> {out}")
    if meta["n_failed_images"]:
        typer.echo(f"{meta['n_failed_images']} unreadable image(s) skipped; see {out / 'failed.csv'}")
