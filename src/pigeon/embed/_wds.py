"""Embedding straight from WebDataset tar shards, and exporting a store as shards another tool reads.

``embed_shards_from(spec, backbone, out_dir)`` reads each input shard (a local path or any fsspec URL) once and
writes the store's shard of the same number, so the input shard is the unit of work and of resumption: a rerun
embeds only the shards whose store shard is missing. DataLoader workers take whole shards (WebDataset's
``split_by_worker`` rule) and batch inside them, so a batch never spans two shards and a shard's vectors do not
depend on how many workers ran. Every image goes through the backbone's ``preprocess`` (its bytes are decoded by
:mod:`pigeon.images`; with a decode device the workers check the headers and the JPEGs are decoded in this process,
batch by batch, on that device: ``ImageTransform.stage`` / ``finish``); an image member over the size limit, an
undecodable image or a truncated shard is listed in ``failed.csv`` with its shard and member, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pigeon._io import atomic_path, provenance, write_json
from pigeon.backbones import Backbone, BackboneCfg, StagedBatch
from pigeon.data.shards import MAX_MEMBER_BYTES, Row, expand_shards, iter_shard, sample_row
from pigeon.embed._config import BATCH_SIZE
from pigeon.embed._extract import (
    _finish, _init_worker, _prepare, check_local_options, embed_config, image_progress, local_backbone,
)
from pigeon.embed._store import MANIFEST, Embeddings, shard_path, write_shard
from pigeon.errors import InputError, PigeonError
from pigeon.images import DecodeConfig, get_max_pixels

_Batch = tuple[str, int, Any, Any]  # ("batch", shard, StagedBatch, None) or ("end", shard, rows, failed)


class ShardImages(IterableDataset):
    """Tar shards -> preprocessed batches: ``("batch", k, StagedBatch keyed by (row, view), None)`` for each batch
    of shard ``k``, then ``("end", k, rows, failed)`` once the shard is read (its rows' fields, view counts and
    failures). Each DataLoader worker reads whole shards: ``shards[worker::workers]``.
    """

    def __init__(self, shards: Sequence[tuple[int, str]], transform: Callable[..., Any],
                 batch_size: int, max_member_bytes: int = MAX_MEMBER_BYTES) -> None:
        super().__init__()
        self.shards, self.transform = list(shards), transform
        self.batch_size, self.max_member_bytes = batch_size, max_member_bytes

    def __iter__(self) -> Iterator[_Batch]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for k, url in self.shards[worker::n_workers]:
            yield from self._shard(k, url)

    def _shard(self, k: int, url: str) -> Iterator[_Batch]:
        rows: list[dict[str, Any]] = []
        failed: list[list[Any]] = []
        pixels: list[Any] = []  # float32 (3, S, S) tensors, or encoded JPEGs for the decode device
        refs: list[tuple[int, int]] = []
        for sample in iter_shard(url, self.max_member_bytes):
            row = sample_row(sample)
            failed += [[row.id, -1, f"{url}#{member}", error] for member, error in row.problems]
            for v, (member, data) in enumerate(row.views):
                x, error = self._pixels(data, f"{url}#{member}")
                if x is None:
                    failed.append([row.id, v, f"{url}#{member}", error])
                    continue
                pixels.append(x)
                refs.append((len(rows), v))
                if len(pixels) == self.batch_size:
                    yield "batch", k, StagedBatch.of(refs, pixels), None
                    pixels, refs = [], []
            rows.append(_row_fields(row, url))
        if pixels:
            yield "batch", k, StagedBatch.of(refs, pixels), None
        yield "end", k, rows, failed

    def _pixels(self, data: bytes, where: str) -> tuple[Any, str]:
        try:
            return self.transform(data), ""
        except PigeonError as exc:
            return None, _named(str(exc), where)
        except Exception as exc:  # a decoder bug must not kill a day-long job: report and skip
            return None, f"{where}: {type(exc).__name__}: {exc}".splitlines()[0]


def _named(message: str, where: str) -> str:
    """The decoder names the bytes "image"; name the shard member instead."""
    return f"{where}: {message}".replace(": image: ", ": ", 1)


def _row_fields(row: Row, url: str) -> dict[str, Any]:
    return {**row.fields, "image": [f"{url}#{member}" for member, _ in row.views]}


def embed_tar_shards(backbone: Backbone, out: Path, shards: dict[int, str], batch_size: int, num_workers: int,
                     advance: Callable[[int], None] = lambda n_images: None,
                     max_member_bytes: int = MAX_MEMBER_BYTES) -> None:
    """Embed the input shards ``shards`` (store shard number -> URL) and write each store shard when done."""
    transform = backbone.transform
    staged = backbone.decode.device is not None  # JPEGs left encoded by the workers, decoded in finish
    dataset = ShardImages(sorted(shards.items()), transform.stage if staged else transform, batch_size,
                          max_member_bytes)
    loader = DataLoader(dataset, batch_size=None, num_workers=min(num_workers, len(shards)), collate_fn=_as_is,
                        worker_init_fn=partial(_init_worker, get_max_pixels()),
                        pin_memory=backbone.device.type == "cuda")
    features: dict[int, dict[tuple[int, int], np.ndarray]] = {k: {} for k in shards}
    late: dict[int, list[tuple[tuple[int, int], str]]] = {k: [] for k in shards}  # failed on the decode device
    for kind, k, a, b in loader:
        if kind == "batch":
            refs, pixels, failures = transform.finish(a) if staged else (a.pixel_keys, a.pixels, [])
            if pixels is not None:
                features[k].update(zip(refs, backbone.embed_pixels(pixels)))
            late[k] += failures
            advance(a.n_images)
            continue
        b = b + [[a[r]["id"], v, a[r]["image"][v], _named(error, a[r]["image"][v])] for (r, v), error in late.pop(k)]
        vectors = features.pop(k)
        per_row = [[vectors[(r, v)] for v in range(len(row["image"])) if (r, v) in vectors]
                   for r, row in enumerate(a)]
        arrays = [np.stack(x) if x else np.zeros((0, backbone.embed_dim), np.float32) for x in per_row]
        write_shard(shard_path(out, k), [row["id"] for row in a], arrays, b, backbone.embed_dim,
                    rows=[{**row, "image": [m for v, m in enumerate(row["image"]) if (r, v) in vectors]}
                          for r, row in enumerate(a)])


def _as_is(item: _Batch) -> _Batch:
    """The items as the dataset made them (torch's default would turn tuples into lists)."""
    return item


def tar_config(backbone: str, cfg: BackboneCfg, urls: list[str], batch_size: int, max_member_bytes: int,
               decode: DecodeConfig | None = None) -> dict[str, Any]:
    """The ``meta.json`` config of a store embedded from tar shards: a manifest store's keys (one rule for what a
    resume must match), the inputs identified by their URLs, rows counted as they are read."""
    base = embed_config(backbone, cfg, pd.DataFrame({"id": [], "image": []}), 1, batch_size, decode)
    return {**base, "manifest_sha256": hashlib.sha256(json.dumps(urls).encode()).hexdigest(),
            "shard_size": "input shard", "n_rows": None, "input_shards": len(urls), "first_shard": urls[0],
            "max_member_bytes": max_member_bytes}


def embed_shards_from(
    spec: str | os.PathLike | Sequence[str],
    backbone: Backbone | str,
    out_dir: str | os.PathLike,
    batch_size: int = BATCH_SIZE,
    num_workers: int | None = None,
    overwrite: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    decode: DecodeConfig | None = None,
) -> Embeddings:
    """Embed every image of some WebDataset shards into a store (one store shard per input shard).

    Args:
        spec: a brace pattern (``"shards/{000000..000099}.tar"``, ``"s3://b/train/{0000..0489}.tar"``), a list
            of URLs, or a folder of tar files (see :func:`pigeon.data.shards.expand_shards`).
        backbone, out_dir, batch_size, overwrite, device, dtype: as :func:`pigeon.embed.embed_manifest`.
        num_workers: decoding processes, each reading whole shards (0: this process).
        max_member_bytes: image members above this are listed as failures, unread.
        decode: how images are decoded (as in :func:`pigeon.embed.embed_manifest`).

    Returns:
        The finished store; its ``manifest.parquet`` holds the rows read from the shards' metadata (id, lat, lon,
        ``image`` as ``"<url>#<member>"``, any other json field), ready for ``pigeon train``.
    """
    num_workers = check_local_options(batch_size, num_workers)
    urls = expand_shards(spec)
    backbone = local_backbone(backbone, device, dtype, decode)
    out = Path(out_dir)
    config = tar_config(backbone.name, backbone.cfg, urls, batch_size, max_member_bytes, backbone.decode)
    if _prepare(out, config, overwrite):
        return Embeddings.load(out)
    todo = {k: url for k, url in enumerate(urls) if not shard_path(out, k).is_file()}
    with image_progress(f"embed {len(todo)} shard(s) ({backbone.name})", None) as advance:
        embed_tar_shards(backbone, out, todo, batch_size, num_workers, advance, max_member_bytes)
    return _finish(out, config, len(urls))


# --- export ---------------------------------------------------------------------------------------------------

def export_shards(embeddings: Embeddings | str | os.PathLike, out_dir: str | os.PathLike, size: int = 10_000,
                  manifest: pd.DataFrame | None = None) -> list[Path]:
    """Write a store as WebDataset shards another tool reads with plain ``webdataset``.

    Each sample: ``npy`` (the view-averaged float32 vector), ``views.npy`` (``(V, D)``, multi-view rows only) and
    ``json`` (``id``, ``n_views``, ``backbone``, and ``lat``/``lon``/``split`` when ``manifest`` has them). The
    folder also gets ``index.parquet`` (id, shard, key) and ``meta.json`` (the store's provenance).

    >>> import webdataset as wds
    >>> for s in wds.WebDataset("emb-wds/shard-{000000..000004}.tar").decode():
    ...     s["npy"], s["json"]["id"]
    """
    import webdataset as wds

    from pigeon.data.shards import SHARD_NAME

    emb = embeddings if isinstance(embeddings, Embeddings) else Embeddings.load(embeddings)
    if size < 1:
        raise InputError(f"--size must be >= 1, got {size}")
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out} is not empty; pass a new folder for the exported shards")
    extra = _manifest_fields(emb, manifest)
    paths, index = [], []
    for k, lo in enumerate(range(0, len(emb), size)):
        ids = emb.ids[lo:lo + size]
        path = out / SHARD_NAME.format(k)
        with atomic_path(path) as tmp:
            writer = wds.TarWriter(str(tmp))
            for n, (id_, mean, views) in enumerate(zip(ids, emb.get(ids), emb.get_views(ids))):
                sample = {"__key__": f"{lo + n:09d}", "npy": mean,
                          "json": {"id": str(id_), "n_views": len(views), "backbone": emb.backbone,
                                   **extra.get(str(id_), {})}}
                if len(views) > 1:
                    sample["views.npy"] = views
                writer.write(sample)
            writer.close()
        paths.append(path)
        index.append(pd.DataFrame({"id": ids, "shard": path.name, "key": [f"{lo + n:09d}" for n in range(len(ids))]}))
    with atomic_path(out / "index.parquet") as tmp:
        pd.concat(index, ignore_index=True).to_parquet(tmp, index=False)
    write_json(out / "meta.json", {**provenance("embedding-shards", {"store": str(emb.root), "size": size}),
                                   "store_meta": emb.meta, "pattern": f"shard-{{000000..{len(paths) - 1:06d}}}.tar"})
    return paths


def _manifest_fields(emb: Embeddings, manifest: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """Per id: lat, lon and split from ``manifest`` (or from the store's own ``manifest.parquet``)."""
    if manifest is None and (emb.root / MANIFEST).is_file():
        manifest = pd.read_parquet(emb.root / MANIFEST)
    if manifest is None:
        return {}
    cols = [c for c in ("lat", "lon", "split") if c in manifest.columns]
    table = manifest.assign(id=manifest["id"].astype(str)).drop_duplicates("id").set_index("id")[cols]
    table = table[table.index.isin(set(map(str, emb.ids)))]
    return {i: {c: (None if pd.isna(v) else v) for c, v in row.items()} for i, row in table.to_dict("index").items()}
