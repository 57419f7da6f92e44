"""``pigeon embed``: embed a manifest's images with a backbone into a resumable store."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app
from pigeon.embed._config import BATCH_SIZE, SHARD_SIZE


@app.command("embed")
def embed_command(
    source: str = typer.Argument(..., metavar="MANIFEST|SHARDS", help="Manifest (.parquet or .csv) with id and image "
                                 "columns, or WebDataset shards: a pattern ('shards/{000000..000099}.tar', any "
                                 "fsspec URL) or a folder of .tar files."),
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
    max_member_mb: float = typer.Option(64.0, "--max-member-mb", help="Shards: image members larger than this "
                                        "are listed as failures, unread."),
    exact_decode: bool = typer.Option(False, "--exact-decode", help="Decode every pixel and resize the whole image "
                                      "(as the transformers processors do) instead of JPEG draft mode / reduce to "
                                      "the backbone's input; slower on large photos."),
    decode_device: str = typer.Option(None, "--decode-device", help="Decode JPEGs in batches with torchvision on "
                                      "this device (cuda, cuda:N: nvJPEG; cpu: its CPU decoder) and resize them "
                                      "there, the workers only checking headers; other formats still by Pillow. "
                                      "Needs the torchvision built for your torch. \\[default: none: Pillow in "
                                      "the workers]"),
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
    From WebDataset shards, each input shard becomes one store shard (the unit of resumption), and the store
    also gets manifest.parquet (the rows' id, lat, lon and fields from the shards' json) for 'pigeon train'.

    Example: pigeon embed photos.parquet --backbone efficientnet:lite0 -o emb/

    From shards: pigeon embed "shards/shard-{000000..000009}.tar" -o emb/ (--split does not apply)

    On a Ray cluster: pigeon embed photos.parquet -o /shared/emb --engine ray --address auto --num-workers 8
    """
    from pigeon.backbones import DEFAULT_BACKBONE
    from pigeon.data.shards import looks_like_shards
    from pigeon.errors import InputError
    from pigeon.images import DecodeConfig, set_max_pixels

    ray_only = {"--address": address, "--num-workers": num_workers, "--cpus-per-worker": cpus_per_worker}
    if engine not in ("local", "ray"):
        raise InputError(f"unknown engine {engine!r}; use local or ray")
    if engine == "local" and any(v is not None for v in ray_only.values()):
        used = ", ".join(k for k, v in ray_only.items() if v is not None)
        raise InputError(f"{used} only apply to --engine ray; add --engine ray or drop them")
    if max_pixels is not None:
        set_max_pixels(max_pixels)
    decode = DecodeConfig(exact=exact_decode, device=decode_device)
    options = dict(backbone=backbone or DEFAULT_BACKBONE, out=out, batch_size=batch_size, workers=workers,
                   overwrite=overwrite, device=device, dtype=dtype, decode=decode)
    ray = dict(num_workers=num_workers, address=address, cpus_per_worker=cpus_per_worker) if engine == "ray" else None
    if looks_like_shards(source):
        if split is not None:
            raise InputError("--split applies to manifests; embed the shards of one split instead")
        emb, n_rows = _embed_shards(source, ray, int(max_member_mb * 2**20), **options)
    else:
        emb, n_rows = _embed_manifest(Path(source), split, shard_size, ray, **options)
    meta = emb.meta
    typer.echo(f"embedded {meta['n_embedded']} of {n_rows} rows ({meta['n_views']} images) with {emb.backbone}, "
               f"dim {emb.dim} -> {out}")
    if meta["n_failed_images"]:
        typer.echo(f"{meta['n_failed_images']} unreadable image(s) skipped; see {out / 'failed.csv'}")


def _embed_manifest(manifest: Path, split, shard_size: int, ray: dict | None, backbone: str, out: Path,
                    batch_size: int, workers, overwrite: bool, device: str, dtype: str, decode):
    from pigeon.data import read_manifest, select_split
    from pigeon.embed import embed_manifest, embed_manifest_ray

    df = select_split(read_manifest(manifest, require_coords=False), split)
    if ray is not None:
        return embed_manifest_ray(df, backbone, out, batch_size=batch_size, shard_size=shard_size,
                                  decode_workers=workers or 0, overwrite=overwrite, device=device, dtype=dtype,
                                  decode=decode, **ray), len(df)
    return embed_manifest(df, backbone, out, batch_size=batch_size, num_workers=workers, shard_size=shard_size,
                          overwrite=overwrite, device=device, dtype=dtype, decode=decode), len(df)


def _embed_shards(spec: str, ray: dict | None, max_member_bytes: int, backbone: str, out: Path, batch_size: int,
                  workers, overwrite: bool, device: str, dtype: str, decode):
    from pigeon.embed import embed_shards_from, embed_shards_ray

    if ray is not None:
        emb = embed_shards_ray(spec, backbone, out, batch_size=batch_size, decode_workers=workers or 0,
                               overwrite=overwrite, device=device, dtype=dtype, max_member_bytes=max_member_bytes,
                               decode=decode, **ray)
    else:
        emb = embed_shards_from(spec, backbone, out, batch_size=batch_size, num_workers=workers, overwrite=overwrite,
                                device=device, dtype=dtype, max_member_bytes=max_member_bytes, decode=decode)
    return emb, emb.meta["config"]["n_rows"]
