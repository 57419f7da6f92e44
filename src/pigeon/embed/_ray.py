"""``embed_manifest_ray``: the same sharded store as :func:`embed_manifest`, embedded on a Ray cluster.

Ray Data maps the missing shards over a pool of actors, each holding one replica of the backbone (on one GPU
when the cluster has them). An actor embeds a whole shard with the single-process code
(:func:`pigeon.embed._extract.embed_shards`: same batches, so the same vectors) and writes it into the store
itself; the driver alone writes ``meta.json`` (before and after) and the index, so workers never race on them.
A killed job rerun embeds only the shards that are missing. The output folder must be visible to every node
(local disk for a one-machine cluster; a shared file system otherwise).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pigeon._device import check_device_name
from pigeon._progress import progress
from pigeon.backbones import Backbone, backbone_cfg, load
from pigeon.data.manifest import image_views, validate_manifest
from pigeon.data.shards import MAX_MEMBER_BYTES, expand_shards
from pigeon.embed._config import BATCH_SIZE, SHARD_SIZE
from pigeon.embed._extract import _finish, _prepare, embed_config, embed_shards, shard_ranges
from pigeon.embed._store import Embeddings, shard_path
from pigeon.embed._wds import embed_tar_shards, tar_config
from pigeon.errors import InputError, MissingDependencyError, PigeonError
from pigeon.images import DecodeConfig, get_max_pixels, set_max_pixels


def embed_manifest_ray(
    df: pd.DataFrame,
    backbone: str,
    out_dir: str | os.PathLike,
    num_workers: int | None = None,
    address: str | None = None,
    batch_size: int = BATCH_SIZE,
    shard_size: int = SHARD_SIZE,
    decode_workers: int = 0,
    cpus_per_worker: float | None = None,
    overwrite: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    decode: DecodeConfig | None = None,
) -> Embeddings:
    """Embed a manifest like :func:`pigeon.embed.embed_manifest`, with ``num_workers`` model replicas on Ray.

    Args:
        df: a manifest (``id``, ``image``); ``df.attrs["root"]`` resolves relative paths.
        backbone: a registry name (each worker loads its own replica, so not a loaded model).
        out_dir: the embeddings folder to create or resume (visible to every node of the cluster).
        num_workers: model replicas (Ray actors); default: one per GPU of the cluster, else one per
            ``cpus_per_worker`` CPUs.
        address: the Ray cluster to join (``"auto"``, ``"ray://host:10001"``...); None: the one this process is
            connected to, else ``RAY_ADDRESS``, else a local instance started (and stopped) here.
        batch_size: images per forward pass.
        shard_size: manifest rows per shard: the unit of work and of resumption.
        decode_workers: image-decoding processes per replica (0: the actor decodes).
        cpus_per_worker: CPUs reserved per replica (its torch threads); default ``1 + decode_workers``.
        overwrite: delete an existing store made with other settings instead of refusing.
        device: ``"cpu"``, ``"cuda"`` or None/``"auto"`` (one GPU per replica when the cluster has GPUs).
        dtype: parameter dtype of the replicas.
        decode: how images are decoded (as in :func:`pigeon.embed.embed_manifest`; default draft / reduce).

    Returns:
        The finished store, opened with :meth:`Embeddings.load`; the same ids and (within float16 rounding)
        the same vectors as :func:`embed_manifest`.
    """
    ray = _import_ray()
    if shard_size < 1:
        raise InputError(f"shard_size must be >= 1, got {shard_size}")
    cpus = _check_options(batch_size, num_workers, decode_workers, cpus_per_worker, device)
    root = df.attrs.get("root", ".")
    df = validate_manifest(df, require_coords=False)
    out = Path(out_dir).resolve()
    decode = decode or DecodeConfig()
    config = {**embed_config(backbone, backbone_cfg(backbone), df, shard_size, batch_size, decode), "engine": "ray"}
    if _prepare(out, config, overwrite):
        return Embeddings.load(out)

    ids = df["id"].tolist()
    views = image_views(df, root)
    shards = shard_ranges(len(ids), shard_size)
    todo = [k for k in range(len(shards)) if not shard_path(out, k).is_file()]
    tasks = [{"shard": k, "ids": json.dumps([ids[r] for r in shards[k]]),
              "views": json.dumps([[str(p) for p in views[r]] for r in shards[k]])} for k in todo]
    units = {k: sum(len(views[r]) for r in shards[k]) for k in todo}
    replica = {"backbone": backbone, "out_dir": str(out), "batch_size": batch_size, "decode_workers": decode_workers,
               "dtype": dtype, "decode": decode.to_dict()}
    config["ray_workers"] = _run(ray, tasks, units, replica, address, num_workers, cpus, device,
                                 f"embed ({backbone}, Ray)")
    return _finish(out, config, len(shards))


def embed_shards_ray(
    spec: str | os.PathLike | Sequence[str],
    backbone: str,
    out_dir: str | os.PathLike,
    num_workers: int | None = None,
    address: str | None = None,
    batch_size: int = BATCH_SIZE,
    decode_workers: int = 0,
    cpus_per_worker: float | None = None,
    overwrite: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    decode: DecodeConfig | None = None,
) -> Embeddings:
    """Embed WebDataset shards like :func:`pigeon.embed.embed_shards_from`, one input shard per Ray task.

    The options are :func:`embed_manifest_ray`'s; the store is the same as the single-process one (either engine
    resumes the other's). Every node must reach the shard URLs and the output folder.
    """
    ray = _import_ray()
    cpus = _check_options(batch_size, num_workers, decode_workers, cpus_per_worker, device)
    urls = expand_shards(spec)
    out = Path(out_dir).resolve()
    decode = decode or DecodeConfig()
    config = {**tar_config(backbone, backbone_cfg(backbone), urls, batch_size, max_member_bytes, decode),
              "engine": "ray"}
    if _prepare(out, config, overwrite):
        return Embeddings.load(out)
    todo = [k for k in range(len(urls)) if not shard_path(out, k).is_file()]
    tasks = [{"shard": k, "url": urls[k]} for k in todo]
    replica = {"backbone": backbone, "out_dir": str(out), "batch_size": batch_size, "decode_workers": decode_workers,
               "dtype": dtype, "max_member_bytes": max_member_bytes, "decode": decode.to_dict()}
    config["ray_workers"] = _run(ray, tasks, {k: 1 for k in todo}, replica, address, num_workers, cpus, device,
                                 f"embed {len(todo)} shard(s) ({backbone}, Ray)")
    return _finish(out, config, len(urls))


def _check_options(batch_size: int, num_workers: int | None, decode_workers: int, cpus_per_worker: float | None,
                   device: str | None) -> float:
    """Validate the Ray options; returns the CPUs per replica."""
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers is not None and num_workers < 1:
        raise InputError(f"num_workers must be >= 1, got {num_workers}")
    if decode_workers < 0:
        raise InputError(f"decode_workers must be >= 0, got {decode_workers}")
    cpus = float(1 + decode_workers if cpus_per_worker is None else cpus_per_worker)
    if cpus <= 0:
        raise InputError(f"cpus_per_worker must be > 0, got {cpus_per_worker}")
    check_device_name(device, ("auto", "cpu", "cuda", "cuda:N"), where=" for Ray workers")
    return cpus


def _run(ray: Any, tasks: list[dict[str, Any]], units: dict[int, int], replica: dict[str, Any], address: str | None,
         num_workers: int | None, cpus: float, device: str | None, label: str) -> int:
    """Map ``tasks`` (one store shard each) over a pool of :class:`ShardEmbedder` actors; returns the pool size."""
    if not tasks:
        return 0
    with _connected(ray, address):
        gpus = _gpus_per_worker(ray, device)
        n = min(num_workers or _fitting_workers(ray, cpus, gpus), len(tasks))
        _check_fits(ray, n, cpus, gpus)
        replica = {**replica, "threads": max(1, int(cpus)), "device": "cuda" if gpus else "cpu",
                   "max_pixels": get_max_pixels()}
        done = (ray.data.from_items(tasks, override_num_blocks=len(tasks))
                .map_batches(ShardEmbedder, batch_size=1, fn_constructor_kwargs=replica,
                             compute=ray.data.ActorPoolStrategy(size=n), num_cpus=cpus, num_gpus=gpus))
        with progress() as bar:
            task = bar.add_task(f"{label}, {n} worker(s)", total=sum(units.values()), info="")
            for row in done.iter_rows():
                if row["error"]:
                    raise PigeonError(f"a Ray worker failed: {row['error']}")
                bar.advance(task, units[int(row["shard"])])
    return n


class ShardEmbedder:
    """One model replica (a Ray Data actor): embeds whole shards and writes them into the store.

    Called with a batch of ``{"shard", "ids", "views"}`` rows (ids and views as JSON) or of ``{"shard", "url"}``
    rows (a WebDataset shard, embedded into the store shard of the same number); returns per shard its
    number and ``error``: "" or the one-line message of a :class:`PigeonError` (e.g. weights that cannot be
    loaded), which the driver raises. A shard already on disk (a retried task) is skipped. Never writes
    ``meta.json`` or the index.
    """

    def __init__(self, backbone: str, out_dir: str, batch_size: int, decode_workers: int, threads: int,
                 device: str, dtype: str | None, max_pixels: int | None,
                 max_member_bytes: int = MAX_MEMBER_BYTES, decode: dict | None = None) -> None:
        self.name, self.out, self.device, self.dtype = backbone, Path(out_dir), device, dtype
        self.decode = DecodeConfig.from_dict(decode or {})
        self.batch_size, self.decode_workers, self.threads, self.max_pixels = (
            batch_size, decode_workers, threads, max_pixels)
        self.max_member_bytes = max_member_bytes
        self.backbone: Backbone | None = None  # loaded by the first call, so a load error comes back as data

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        errors = []
        for i in range(len(batch["shard"])):
            try:
                self._embed({key: values[i] for key, values in batch.items()})
                errors.append("")
            except PigeonError as exc:
                errors.append(str(exc))
        return {"shard": np.asarray(batch["shard"], dtype=np.int64), "error": np.asarray(errors, dtype=object)}

    def _embed(self, task: dict[str, Any]) -> None:
        k = int(task["shard"])
        if shard_path(self.out, k).is_file():
            return
        if self.backbone is None:
            import torch

            set_max_pixels(self.max_pixels)
            torch.set_num_threads(self.threads)
            self.backbone = load(self.name, device=self.device, dtype=self.dtype)
            self.backbone.decode = self.decode
        if "url" in task:  # a WebDataset shard
            embed_tar_shards(self.backbone, self.out, {k: str(task["url"])}, self.batch_size, self.decode_workers,
                             max_member_bytes=self.max_member_bytes)
            return
        ids, views = json.loads(task["ids"]), [[Path(p) for p in v] for v in json.loads(task["views"])]
        embed_shards(self.backbone, self.out, ids, views, {k: range(len(ids))}, self.batch_size, self.decode_workers)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError("ray[data]", extra="scale", purpose="--engine ray") from None
    return ray


@contextlib.contextmanager
def _connected(ray: Any, address: str | None) -> Iterator[None]:
    """Use the Ray connection of this process, or open one (and close it afterwards)."""
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
        except ConnectionError as exc:
            raise InputError(f"cannot join the Ray cluster at {address!r}: {exc}".splitlines()[0]
                             + "; check --address (or start one with 'ray start --head')") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # not "progress bars disabled"
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _fitting_workers(ray: Any, cpus: float, gpus: int) -> int:
    """Default replica count: one per GPU, else as many as the cluster's CPUs hold."""
    total = ray.cluster_resources()
    return max(1, int(total.get("GPU", 0) // gpus if gpus else total.get("CPU", 1) // cpus))


def _check_fits(ray: Any, n: int, cpus: float, gpus: int) -> None:
    """A clear error instead of Ray waiting forever for actors the cluster cannot hold."""
    total = ray.cluster_resources()
    for what, need, flag in (("CPU", n * cpus, "--cpus-per-worker"), ("GPU", n * gpus, "--device cpu")):
        if need > total.get(what, 0) + 1e-9:
            raise InputError(f"{n} Ray workers need {need:g} {what}s but the cluster has {total.get(what, 0):g}; "
                             f"lower --num-workers or {flag}")


def _gpus_per_worker(ray: Any, device: str | None) -> int:
    """1 when replicas go on GPUs (``device`` cuda, or auto on a cluster with GPUs), else 0."""
    has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
    if device in (None, "auto"):
        return int(has_gpus)
    if str(device).startswith("cuda"):
        if not has_gpus:
            raise InputError(f"device {device!r} requested but the Ray cluster has no GPU; use --device cpu")
        return 1
    return 0
