"""``embed_manifest``: embed every image of a manifest into a resumable, sharded store."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from pigeon._io import atomic_path, provenance, read_json, write_json
from pigeon._progress import progress
from pigeon.backbones import Backbone, BackboneCfg, StagedBatch, load
from pigeon.data.manifest import image_views, manifest_sha256, validate_manifest
from pigeon.embed._config import BATCH_SIZE, SHARD_SIZE
from pigeon.embed._store import (
    FAILED, FAILED_COLUMNS, INDEX, MANIFEST, META, SHARDS, Embeddings, read_shard_metadata, shard_path, write_shard,
)
from pigeon.errors import InputError, PigeonError
from pigeon.images import DecodeConfig, get_max_pixels, set_max_pixels

#: settings whose change makes existing shards unusable for a resumed run
_RESUME_KEYS = ("backbone", "manifest_sha256", "shard_size", "dim", "exact_decode", "decode_device")
#: what stores written before a resume key existed were made with (every pixel was decoded then, by Pillow)
_BEFORE = {"exact_decode": True, "decode_device": None}


def default_workers() -> int:
    """Decoding worker processes: one per spare CPU core, at most 8."""
    return min(8, max(0, (os.cpu_count() or 1) - 1))


def _init_worker(max_pixels: int | None, _worker_id: int) -> None:
    """Worker set-up: the parent's image-size limit (also under spawn) and one thread per decoder."""
    set_max_pixels(max_pixels)
    torch.set_num_threads(1)


class _ViewDataset(Dataset):
    """Flat list of image paths -> ``(index, pixels or an encoded JPEG or None, error)``; bad images never raise."""

    def __init__(self, paths: list[Path], transform: Callable[[Path], Any]) -> None:
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any, str]:
        try:
            return i, self.transform(self.paths[i]), ""
        except PigeonError as exc:
            return i, None, str(exc)
        except Exception as exc:  # a decoder bug must not kill a day-long job: report and skip
            return i, None, f"{self.paths[i]}: {type(exc).__name__}: {exc}".splitlines()[0]


def _collate(batch: list[tuple[int, Any, str]]) -> tuple[StagedBatch, list[tuple[int, str]]]:
    """Group the readable images (pixels stacked, JPEGs for the decode device kept encoded); keep ``(index, error)``
    for the others."""
    ok = [(i, x) for i, x, _ in batch if x is not None]
    return StagedBatch.of([i for i, _ in ok], [x for _, x in ok]), [(i, err) for i, x, err in batch if x is None]


def embed_manifest(
    df: pd.DataFrame,
    backbone: Backbone | str,
    out_dir: str | os.PathLike,
    batch_size: int = BATCH_SIZE,
    num_workers: int | None = None,
    shard_size: int = SHARD_SIZE,
    overwrite: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    decode: DecodeConfig | None = None,
) -> Embeddings:
    """Embed every view of every manifest row and store per-view and view-averaged float16 vectors.

    Rerunning after an interruption continues from the last complete shard. Unreadable images are listed in
    ``failed.csv`` and skipped; a row whose views all fail has no embedding.

    Args:
        df: a manifest (``id``, ``image`` as a path or a list of view paths); ``df.attrs["root"]`` resolves
            relative paths.
        backbone: a loaded :class:`~pigeon.backbones.Backbone` or a registry name.
        out_dir: the embeddings folder to create or resume.
        batch_size: images per forward pass.
        num_workers: decoding processes (0: decode in this process); default :func:`default_workers`.
        shard_size: manifest rows per shard (the unit of resumption).
        overwrite: delete an existing store made with other settings instead of refusing.
        device: where to load ``backbone`` when given by name (None: CUDA if available).
        dtype: parameter dtype when ``backbone`` is given by name.
        decode: how images are decoded (:class:`~pigeon.images.DecodeConfig`: draft / reduce by default,
            ``exact=True`` for every pixel, ``device="cuda"`` for JPEGs decoded in batches by torchvision on the
            GPU); sets ``backbone.decode``. None keeps the backbone's. Recorded in ``meta.json``; a store is only
            resumed with the same ``exact`` and ``device`` settings.

    Returns:
        The finished store, opened with :meth:`Embeddings.load`.
    """
    if shard_size < 1:
        raise InputError(f"shard_size must be >= 1, got {shard_size}")
    num_workers = check_local_options(batch_size, num_workers)
    root = df.attrs.get("root", ".")
    df = validate_manifest(df, require_coords=False)
    backbone = local_backbone(backbone, device, dtype, decode)
    out = Path(out_dir)
    config = embed_config(backbone.name, backbone.cfg, df, shard_size, batch_size, backbone.decode)
    if _prepare(out, config, overwrite):
        return Embeddings.load(out)

    ids = df["id"].tolist()
    views = image_views(df, root)
    shards = shard_ranges(len(ids), shard_size)
    todo = {k: rows for k, rows in enumerate(shards) if not shard_path(out, k).is_file()}
    with image_progress(f"embed ({backbone.name})", sum(len(views[r]) for s in todo.values() for r in s)) as advance:
        embed_shards(backbone, out, ids, views, todo, batch_size, num_workers, advance)
    return _finish(out, config, len(shards))


def local_backbone(backbone: Backbone | str, device: str | None, dtype: str | None,
                   decode: DecodeConfig | None) -> Backbone:
    """The backbone to embed with in this process (loaded when named), decoding as ``decode`` says when given."""
    backbone = load(backbone, device=device, dtype=dtype) if isinstance(backbone, str) else backbone
    if decode is not None:
        backbone.decode = decode
    if backbone.decode.device is not None:  # torchvision and CUDA for the decode device, before any work
        backbone.transform.check_device()
    return backbone


def check_local_options(batch_size: int, num_workers: int | None) -> int:
    """Validate the single-process options; returns the number of decoding workers (default filled in)."""
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    num_workers = default_workers() if num_workers is None else num_workers
    if num_workers < 0:
        raise InputError(f"num_workers must be >= 0, got {num_workers}")
    return num_workers


@contextlib.contextmanager
def image_progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar of images with the rate so far; yields ``advance(n_images)``."""
    with progress() as bar:
        task = bar.add_task(description, total=total, info="")
        t0 = time.perf_counter()

        def advance(n_images: int) -> None:
            bar.advance(task, n_images)
            bar.update(task, info=f"{bar.tasks[task].completed / (time.perf_counter() - t0):.1f} img/s")

        yield advance


def embed_config(backbone: str, cfg: BackboneCfg, df: pd.DataFrame, shard_size: int, batch_size: int,
                 decode: DecodeConfig | None = None) -> dict[str, Any]:
    """The ``meta.json`` config of a store (the same for every engine, so either can resume the other's)."""
    decode = decode or DecodeConfig()
    return {"backbone": backbone, "backbone_cfg": cfg.to_dict(), "dim": cfg.embed_dim,
            "manifest_sha256": manifest_sha256(df), "shard_size": shard_size, "n_rows": len(df),
            "dtype": "float16", "batch_size": batch_size, "exact_decode": decode.exact, "decode_device": decode.device,
            "decode": decode.to_dict()}


def shard_ranges(n_rows: int, shard_size: int) -> list[range]:
    """Manifest rows of each shard."""
    return [range(k * shard_size, min(n_rows, (k + 1) * shard_size)) for k in range(math.ceil(n_rows / shard_size))]


def embed_shards(backbone: Backbone, out: Path, ids: list[str], views: list[list[Path]], shards: dict[int, range],
                 batch_size: int, num_workers: int, advance: Callable[[int], None] = lambda n_images: None) -> None:
    """Embed the rows of ``shards`` (shard number -> rows of ``ids``/``views``) and write each shard when done.

    A batch never spans two shards, so a shard's vectors do not depend on which other shards are embedded with
    it (resumption, or another engine, gives the same result). ``advance(n)`` is told of every ``n`` images done.
    With a decode device (``backbone.decode.device``) the workers only check headers and the JPEGs of each batch are
    decoded here, on that device (``ImageTransform.stage`` / ``finish``).
    """
    items: list[tuple[int, int]] = []  # (row, view) per image to embed
    batches: list[list[int]] = []
    batch_shard: list[int] = []
    for k, rows in shards.items():
        start = len(items)
        items += [(r, v) for r in rows for v in range(len(views[r]))]
        for b in range(start, len(items), batch_size):
            batches.append(list(range(b, min(b + batch_size, len(items)))))
            batch_shard.append(k)
    transform = backbone.transform
    staged = backbone.decode.device is not None  # JPEGs left encoded by the workers, decoded in finish
    dataset = _ViewDataset([views[r][v] for r, v in items], transform.stage if staged else transform)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=_collate,
                        worker_init_fn=partial(_init_worker, get_max_pixels()),
                        pin_memory=backbone.device.type == "cuda")
    features: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    remaining = {k: sum(len(views[r]) for r in rows) for k, rows in shards.items()}
    for k, (batch, failed) in zip(batch_shard, loader):
        idx, pixels, late = transform.finish(batch) if staged else (batch.pixel_keys, batch.pixels, [])
        if pixels is not None:
            features.update(zip(idx, backbone.embed_pixels(pixels)))
        errors.update(failed + late)
        remaining[k] -= len(idx) + len(failed) + len(late)
        advance(len(idx) + len(failed) + len(late))
        if remaining[k] == 0:
            _flush(out, k, shards[k], ids, views, items, features, errors, backbone.embed_dim)


def _flush(out: Path, k: int, rows: range, ids: list[str], views: list[list[Path]], items: list[tuple[int, int]],
           features: dict[int, np.ndarray], errors: dict[int, str], dim: int) -> None:
    """Write shard ``k`` from the collected features and forget them."""
    per_row: dict[int, list[np.ndarray]] = {r: [] for r in rows}
    failed = []
    for i in sorted(j for j in list(features) + list(errors) if items[j][0] in per_row):
        r, v = items[i]
        if i in features:
            per_row[r].append(features.pop(i))
        else:
            failed.append([ids[r], v, str(views[r][v]), errors.pop(i)])
    vectors = [np.stack(per_row[r]) if per_row[r] else np.zeros((0, dim), np.float32) for r in rows]
    write_shard(shard_path(out, k), [ids[r] for r in rows], vectors, failed, dim)


def _prepare(out: Path, config: dict[str, Any], overwrite: bool) -> bool:
    """Check an existing store against ``config`` (or clear it); True when it is already complete."""
    if (out / META).is_file():
        meta = read_json(out / META)
        old = meta.get("config", {})
        changed = [k for k in _RESUME_KEYS if old.get(k, _BEFORE.get(k)) != config[k]]
        if changed and not overwrite:
            raise InputError(f"{out} holds embeddings made with a different {', '.join(changed)}; "
                             "pass another output folder or --overwrite")
        if changed:
            for name in (META, INDEX, FAILED, MANIFEST):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / SHARDS, ignore_errors=True)
        elif meta.get("complete"):
            return True
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not an embeddings folder; pass an empty or new output folder")
    for stale in (out / SHARDS).glob(".*.tmp"):  # half-written shards of a killed run
        stale.unlink()
    write_json(out / META, {**provenance("embeddings", config), "complete": False, "dim": config["dim"]})
    return False


def _finish(out: Path, config: dict[str, Any], n_shards: int) -> Embeddings:
    """Build the index and failure report from the shards, then mark the store complete.

    Stores embedded from tar shards also get ``manifest.parquet``, the rows' fields read from the shards.
    """
    index, failed, rows = [], [], []
    for k in range(n_shards):
        meta = read_shard_metadata(shard_path(out, k))
        n = np.asarray(meta["n_views"], dtype=np.int64)
        index.append(pd.DataFrame({"id": meta["ids"], "shard": k, "offset": np.arange(len(n)),
                                   "view_offset": np.cumsum(n) - n, "n_views": n}))
        failed += meta["failed"]
        rows += meta.get("rows", [])
    index = pd.concat(index, ignore_index=True)
    repeated = index["id"].duplicated()
    if repeated.any():  # tar shards name their own ids: keep the first copy, list the others
        first = index.drop_duplicates("id").set_index("id")["shard"]
        failed += [[i, -1, f"store shard {k}", f"repeated id (first in store shard {first[i]}); this copy is left "
                    "out: give every sample its own id"] for i, k in zip(index["id"][repeated], index["shard"][repeated])]
        index = index[~repeated].reset_index(drop=True)
        rows = list({str(r["id"]): r for r in reversed(rows)}.values())[::-1]
    with atomic_path(out / INDEX) as tmp:
        index.to_parquet(tmp, index=False)
    with atomic_path(out / FAILED) as tmp:
        pd.DataFrame(failed, columns=FAILED_COLUMNS).to_csv(tmp, index=False)
    if rows:
        with atomic_path(out / MANIFEST) as tmp:
            pd.DataFrame(rows).to_parquet(tmp, index=False)
    if config["n_rows"] is None:  # tar shards: rows are counted as they are read
        config = {**config, "n_rows": len(index) + len({f[0] for f in failed} - set(index["id"]))}
    n_failed_rows = config["n_rows"] - len(index)
    write_json(out / META, {**provenance("embeddings", config), "complete": True, "dim": config["dim"],
                            "n_embedded": len(index), "n_views": int(index["n_views"].sum()),
                            "n_failed_images": len(failed), "n_failed_rows": n_failed_rows})
    return Embeddings.load(out)
