"""Scale-out: Ray embedding throughput against the single-process path, memory of streamed against in-memory reads,
DDP head-training step time, and IVF-PQ galleries built from embedding shards.

Usage::

    python benchmarks/scale.py [--parts embed manifest embeddings ddp ivfpq evaluate] [--images 384] [--rows 1000000]
        [--dim 768] [--ddp-rows 65536] [--ddp-cells 2000] [--ddp-batch 512] [--ivf-sizes 1000000 10000000]
        [--ivf-dim 1024] [--tmp DIR]

Parts (each prints a Markdown table):

- ``embed``: ``embed_manifest`` (one process: torch threads on every core, ``default_workers()`` decoding
  processes) against ``embed_manifest_ray`` with 1 replica (all cores, the same decoding processes) and with 2
  replicas (half the cores each), on the same 640x480 JPEGs with EfficientNet-Lite0 (``--backbone``), on one
  local Ray instance; ``--device cuda`` gives each replica a GPU. Runs are interleaved, best of ``--repeats``. A Ray
  job also pays a fixed cost (actors start, each loads its replica), measured on an 8-image job and subtracted for
  the steady rate.
- ``manifest``: peak memory and time of reading a ``--rows`` manifest (Parquet, row groups of 65,536) whole
  (``read_manifest``), batch by batch (``iter_manifest``) and as points only (``read_points``).
- ``embeddings``: a ``--rows`` x ``--dim`` float16 store; peak memory and time of one pass over every vector in
  memory (``Embeddings.get`` of all ids into one tensor, then batches of 1,024), with ``Embeddings.iter_batches``,
  and with ``EmbeddingBatches`` through a DataLoader (what a training engine consumes).
- ``ddp``: head training (``fit_head``: a linear geocell head over ``--ddp-cells`` cells with haversine label
  smoothing, ``--ddp-rows`` x ``--dim`` embeddings, global batch ``--ddp-batch``) in 1 process with 1 and with 2
  torch threads, and in 2 gloo processes of 1 thread each (torch.multiprocessing with torchrun's environment, the
  same engine code as ``torchrun -m pigeon train``); time per optimiser step of the second epoch, as the engine
  times it (training steps only). The 2 processes share the same 2 cores as the 2-thread process.
- ``evaluate``: peak memory and time of ``pigeon evaluate``'s report (``write_report``, every plot) on ``--rows``
  truth rows and their rank-1 predictions (not part of the default ``--parts``).
- ``ivfpq``: for each ``--ivf-sizes``, clustered float16 ``--ivf-dim``-d vectors are written shard by shard into an
  embeddings store; a fresh process builds an IVF-PQ index from the store with ``pigeon.refine.build_index``
  (``IVF{4 sqrt(n)},PQ{dim/16}``, what the auto rule picks above 1M vectors, trained on a seeded sample of 256k rows,
  filled shard by shard; FAISS's default threads) and reports build
  time, peak memory and recall@1 against exact search (leave-one-out, ``--ivf-queries`` rows; without and with
  exact re-ranking of 64 candidates); another fresh process memory-maps the saved index and times searches. A size
  whose store would not fit on the disk (twice ``n x dim x 2`` bytes, plus a margin) is skipped with a note; the
  store is deleted after each size.

Every memory figure is the peak resident set (``VmHWM``) of a fresh process that does only that (memory-mapped
shard pages it touched included), and how far it rose above the same process after a warm-up on a 1,000-row file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKBONE = "efficientnet:lite0"


def _peak_mb() -> float:
    """Peak resident memory of this process image (VmHWM: unlike ``ru_maxrss``, not inherited over fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- embed: Ray workers vs one process


def bench_embed(n_images: int, repeats: int, batch_size: int, shard_size: int, ray_workers: list[int],
                device: str, backbone: str) -> list[str]:
    """Wall time of each engine on the same images; the fixed cost is an 8-image job in shards of 4 rows.

    On CPU the cores are divided between the replicas (each decodes with ``cores per replica - 1`` processes, like
    the single process's ``default_workers()``); on CUDA each replica gets one GPU.
    """
    import ray

    sys.path.insert(0, str(HERE))
    from embed import make_photos  # the same 640x480 JPEGs as benchmarks/embed.py

    from pigeon.backbones import load
    from pigeon.embed import default_workers, embed_manifest, embed_manifest_ray

    cpus = os.cpu_count() or 1
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    bb = load(backbone, device=device)

    def single(df, out, rows):
        return embed_manifest(df, bb, out, batch_size=batch_size, num_workers=default_workers(), shard_size=rows)

    def on_ray(k: int):
        per_worker = cpus / k
        return lambda df, out, rows: embed_manifest_ray(
            df, backbone, out, num_workers=k, batch_size=batch_size, shard_size=rows, device=device,
            decode_workers=min(8, max(0, int(per_worker) - 1)), cpus_per_worker=per_worker)

    variants = {"single process": (single, 1)}
    variants.update({f"Ray, {k} worker{'s' * (k > 1)}": (on_ray(k), k) for k in ray_workers})
    best: dict[str, float] = {}
    fixed: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        df = make_photos(tmp, n_images)
        small = df.iloc[:8].copy()
        small.attrs = dict(df.attrs)
        runs = iter(range(1000))
        for name, (run, _) in variants.items():  # fixed cost: an 8-image job (for Ray: actors start, load models)
            t = time.perf_counter()
            run(small, f"{tmp}/out{next(runs)}", 4)
            fixed[name] = time.perf_counter() - t
        for _ in range(repeats):  # interleaved, so every engine sees the same machine load
            for name, (run, _) in variants.items():
                t = time.perf_counter()
                emb = run(df, f"{tmp}/out{next(runs)}", shard_size)
                wall = time.perf_counter() - t
                assert len(emb) == n_images
                best[name] = min(best.get(name, float("inf")), wall)
    ray.shutdown()
    base = n_images / best["single process"]
    lines = [f"{n_images} images 640x480, {backbone} on {device}, batch {batch_size}, shards of {shard_size} rows, "
             f"{cpus} CPU cores, torch {_torch_version()}, Ray {ray.__version__} (local instance started in "
             f"{ray_start:.1f} s); best of {repeats}.", "",
             "| engine | wall s | img/s | img/s vs single process | fixed cost s (8 images, 2 shards) "
             "| steady img/s (fixed cost taken out) | steady img/s per worker |",
             "|---|---|---|---|---|---|---|"]
    for name, wall in best.items():
        steady = n_images / (wall - fixed[name]) if wall > fixed[name] else float("nan")  # nan: too few images
        lines.append(f"| {name} | {wall:.1f} | {n_images / wall:.1f} | {n_images / wall / base:.2f} "
                     f"| {fixed[name]:.1f} | {steady:.1f} | {steady / variants[name][1]:.1f} |")
    return lines


def _torch_version() -> str:
    import torch

    return torch.__version__


# ---------------------------------------------------------------- manifest: whole vs streamed


def make_manifest(path: Path, rows: int) -> None:
    """A manifest shaped like MP-16 / OSV-5M: id, image path, lat, lon, split, country."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    writer = None
    for lo in range(0, rows, 65_536):
        n = min(65_536, rows - lo)
        ids = np.char.add("mp16_", np.arange(lo, lo + n).astype(str))
        df = pd.DataFrame({
            "id": ids, "image": np.char.add(np.char.add("images/", ids), ".jpg"),
            "lat": np.degrees(np.arcsin(rng.uniform(-1, 1, n))), "lon": rng.uniform(-180, 180, n),
            "split": rng.choice(["train", "val", "test"], n, p=[0.9, 0.05, 0.05]),
            "country": rng.choice(["US", "FR", "JP", "BR", "IN", "ZA"], n),
        })
        table = pa.Table.from_pandas(df, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=65_536)
    writer.close()


def manifest_probe(mode: str, path: str, warm_up: str) -> dict:
    from pigeon.data import iter_manifest, read_manifest, read_points

    def run(file: str) -> int:
        if mode == "read_manifest (whole)":
            return len(read_manifest(file))
        if mode == "iter_manifest (65,536 rows a batch)":
            return sum(len(batch) for batch in iter_manifest(file, batch_rows=65_536))
        return len(read_points(file, split="train"))

    run(warm_up)  # lazy imports and allocator pools, so that the base is the process ready to read
    base = _peak_mb()
    t = time.perf_counter()
    n = run(path)
    return {"rows": n, "seconds": time.perf_counter() - t, "peak_mb": _peak_mb(), "base_mb": base}


MANIFEST_MODES = ("read_manifest (whole)", "iter_manifest (65,536 rows a batch)", "read_points (lat, lon, split; train)")


def bench_manifest(rows: int, tmp: Path) -> list[str]:
    path = tmp / "manifest.parquet"
    make_manifest(path, rows)
    make_manifest(tmp / "warm_up.parquet", 1000)
    return [f"{rows:,}-row manifest (id, image, lat, lon, split, country), {path.stat().st_size / 1e6:.0f} MB of "
            "Parquet in row groups of 65,536.", "",
            *_probe_table("manifest", MANIFEST_MODES, path, tmp / "warm_up.parquet")]


# ---------------------------------------------------------------- evaluation of a large predictions file


def evaluate_probe(mode: str, path: str, warm_up: str) -> dict:
    """``pigeon evaluate``'s library path on ``path``'s truth and its predictions (every plot of the report)."""
    from pigeon.evaluate import read_predictions, read_truth, write_report

    def run(truth: str) -> int:
        pred = read_predictions(truth.replace(".parquet", ".pred.csv"))
        with tempfile.TemporaryDirectory() as out:
            return write_report(pred, read_truth(truth), out)["n"]

    run(warm_up)
    base = _peak_mb()
    t = time.perf_counter()
    n = run(path)
    return {"rows": n, "seconds": time.perf_counter() - t, "peak_mb": _peak_mb(), "base_mb": base}


def make_predictions(truth: Path) -> None:
    """Rank-1 guesses about 300 km from each truth row, in the CSV that ``pigeon predict --manifest`` writes."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(truth, columns=["id", "lat", "lon"])
    rng = np.random.default_rng(1)
    pd.DataFrame({"id": df["id"], "rank": 1, "lat": np.clip(df["lat"] + rng.normal(0, 3, len(df)), -90, 90),
                  "lon": (df["lon"] + rng.normal(0, 3, len(df)) + 180) % 360 - 180, "prob": 0.5}).to_csv(
        truth.with_suffix(".pred.csv"), index=False)


def bench_evaluate(rows: int, tmp: Path) -> list[str]:
    path, warm_up = tmp / "truth.parquet", tmp / "warm_up.parquet"
    make_manifest(path, rows)
    make_manifest(warm_up, 1000)
    make_predictions(path)
    make_predictions(warm_up)
    return [f"{rows:,} truth rows and rank-1 predictions (CSV); the report with every plot.", "",
            *_probe_table("evaluate", ("write_report (pigeon evaluate)",), path, warm_up)]


# ---------------------------------------------------------------- embeddings: in memory vs streamed


def make_store(root: Path, rows: int, dim: int, shard_size: int = 4096, draw=None) -> None:
    """A complete ``rows`` x ``dim`` store of float16 vectors (one view a row), without a backbone, written shard by
    shard: ``draw(rng, n)`` makes each shard's vectors (default: standard normal)."""
    import numpy as np
    import pandas as pd

    from pigeon.backbones import BackboneCfg
    from pigeon.embed._extract import _finish, _prepare, embed_config, shard_ranges
    from pigeon.embed._store import shard_path, write_shard

    ids = [f"mp16_{i}" for i in range(rows)]
    cfg = BackboneCfg(source="random", embed_dim=dim, image_size=224)
    config = embed_config("random", cfg, pd.DataFrame({"id": ids, "image": ids}), shard_size, 32)
    _prepare(root, config, overwrite=True)
    rng = np.random.default_rng(0)
    for k, shard in enumerate(shard_ranges(rows, shard_size)):
        x = draw(rng, len(shard)) if draw else rng.standard_normal((len(shard), dim), dtype=np.float32)
        write_shard(shard_path(root, k), ids[shard.start:shard.stop], list(x[:, None, :]), [], dim)
    _finish(root, config, len(shard_ranges(rows, shard_size)))


def embeddings_probe(mode: str, root: str, warm_up: str) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from pigeon.embed import EmbeddingBatches, Embeddings

    def run(folder: str) -> int:
        emb = Embeddings.load(folder)
        if mode == "Embeddings.load (index only)":
            return len(emb)
        if mode.startswith("in memory"):
            x = torch.from_numpy(emb.get(emb.ids))
            perm = torch.randperm(len(x))
            return sum(len(x[perm[lo:lo + 1024]]) for lo in range(0, len(x), 1024))
        if mode.startswith("iter_batches"):
            return sum(len(x) for _, x in emb.iter_batches(batch_size=65_536))
        loader = DataLoader(EmbeddingBatches(emb, batch_size=1024), batch_size=None,
                            num_workers=1 if "1 worker" in mode else 0)
        return sum(len(batch["x"]) for batch in loader)

    run(warm_up)  # lazy imports and allocator pools, so that the base is the process ready to read
    base = _peak_mb()
    t = time.perf_counter()
    n = run(root)
    return {"rows": n, "seconds": time.perf_counter() - t, "peak_mb": _peak_mb(), "base_mb": base}


EMBEDDING_MODES = ("Embeddings.load (index only)", "in memory: get(all ids), shuffled batches of 1,024",
                   "iter_batches (65,536 a batch, store order)",
                   "EmbeddingBatches (1,024 a batch, shuffled, 2 shards mixed), DataLoader in-process",
                   "EmbeddingBatches, DataLoader with 1 worker")


def bench_embeddings(rows: int, dim: int, tmp: Path) -> list[str]:
    root = tmp / "emb"
    make_store(tmp / "warm_up", 1000, dim)
    t = time.perf_counter()
    make_store(root, rows, dim)
    size = sum(p.stat().st_size for p in (root / "shards").iterdir()) / 1e9
    return [f"{rows:,} x {dim} embeddings, float16 store of {size:.2f} GB in shards of 4,096 rows (written in "
            f"{time.perf_counter() - t:.0f} s); one pass over every vector.", "",
            *_probe_table("embeddings", EMBEDDING_MODES, root, tmp / "warm_up")]


# ---------------------------------------------------------------- hooks for the other parts of issue 15


# ---------------------------------------------------------------- ddp: one process vs two (torchrun's set-up)


def _ddp_worker(rank: int, world: int, port: int, threads: int, rows: int, dim: int, cells: int, batch: int,
                epochs: int, out: str) -> None:
    """One process of a head-training run; rank 0 writes the engine's history as JSON."""
    import numpy as np
    import torch

    if world > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    from pigeon.model import TrainConfig, fit_head

    rng = np.random.default_rng(0)  # the same data in every process: each reads only its block of rows
    centroids = np.column_stack([np.degrees(np.arcsin(rng.uniform(-1, 1, cells))), rng.uniform(-180, 180, cells)])
    labels = rng.integers(0, cells, rows)
    X = (rng.standard_normal((cells, dim), dtype=np.float32)[labels]
         + rng.standard_normal((rows, dim), dtype=np.float32))
    coords = centroids[labels] + rng.normal(0, 1, (rows, 2))
    val = (X[:2048], coords[:2048], labels[:2048])
    config = TrainConfig(epochs=epochs, batch_size=batch, aux=False, dropout=0.0, patience=epochs,
                         warmup_epochs=0.0, device="cpu")
    result = fit_head(X, coords, labels, centroids, val=val, config=config)
    allreduce_ms = None
    if world > 1:  # what one step's gradient exchange costs alone: every parameter of the head, gloo
        grads = torch.zeros(sum(p.numel() for p in result.head.parameters()))
        torch.distributed.all_reduce(grads)
        t = time.perf_counter()
        for _ in range(20):
            torch.distributed.all_reduce(grads)
        allreduce_ms = 1000 * (time.perf_counter() - t) / 20
    if rank == 0:
        Path(out).write_text(json.dumps({"history": result.history, "allreduce_ms": allreduce_ms,
                                         "params": sum(p.numel() for p in result.head.parameters())}))
    if world > 1:
        torch.distributed.destroy_process_group()


def bench_ddp(rows: int, dim: int, cells: int, batch: int) -> list[str]:
    """Optimiser-step time of head training: 1 process (1 and 2 threads) vs 2 gloo processes of 1 thread."""
    import socket

    import torch
    import torch.multiprocessing as mp

    epochs = 2
    steps = -(-rows // batch)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, world, threads in (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2),
                                     ("2 processes (DDP, gloo), 1 thread each", 2, 1)):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            out = f"{tmp}/{world}_{threads}.json"
            mp.spawn(_ddp_worker, args=(world, port, threads, rows, dim, cells, batch, epochs, out), nprocs=world)
            run = json.loads(Path(out).read_text())
            results[name] = run["history"][-1]["seconds"] / steps  # the second epoch: warm
            if run["allreduce_ms"] is not None:
                exchange = (run["params"], run["allreduce_ms"])
    base = results["1 process, 1 thread"]
    lines = [f"Head training (`fit_head`): {rows:,} x {dim} embeddings, linear head over {cells:,} cells with haversine "
             f"label smoothing, global batch {batch} ({steps} optimiser steps an epoch; each of 2 processes takes "
             f"{batch // 2} rows a step from its own half of the data), the second of {epochs} epochs, torch "
             f"{torch.__version__}. One run; the 2 processes share the same 2 cores as the 2-thread process, on a "
             "machine other jobs were using.", "",
             "| set-up | ms per step | steps/s | vs 1 process, 1 thread |", "|---|---|---|---|"]
    for name, secs in results.items():
        lines.append(f"| {name} | {1000 * secs:.1f} | {1 / secs:.1f} | {base / secs:.2f} |")
    lines += ["", f"One all-reduce of the head's {exchange[0]:,} gradients ({exchange[0] * 4 / 1e6:.1f} MB, gloo over "
              f"loopback) alone: {exchange[1]:.1f} ms."]
    return lines


# ---------------------------------------------------------------- ivfpq: large galleries


def clustered_vectors(seed: int, dim: int, clusters: int = 20_000, intrinsic: int = 32):
    """``draw(rng, n) -> float32 (n, dim)``: points around ``clusters`` centres, spread in a shared
    ``intrinsic``-dimensional subspace plus a little isotropic noise (embeddings have a low intrinsic dimension)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, intrinsic)))[0].astype(np.float32)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)

    def draw(r, n: int):
        k = r.integers(0, clusters, n)
        spread = r.standard_normal((n, intrinsic), dtype=np.float32) * 0.5
        return centres[k] + spread @ basis.T + r.standard_normal((n, dim), dtype=np.float32) * 0.05
    return draw


def ivfpq_probe(mode: str, root: str, index_path: str) -> dict:
    """``build``: the index from the store, recall, peak memory; ``search``: the memory-mapped index."""
    import faiss
    import numpy as np

    from pigeon.embed import Embeddings
    from pigeon.model import StoreRows
    from pigeon.refine import build_index, read_index, recall_at_1, write_index
    from pigeon.refine._index import auto_factory, describe, search

    emb = Embeddings.load(root)
    factory = auto_factory(len(emb), emb.dim, flat_max=0, pq_min=0)  # IVF-PQ at every size
    warm = build_index(np.random.default_rng(0).standard_normal((3000, emb.dim), dtype=np.float32), "euclidean",
                       "IVF8,PQ8", 8)  # imports, OpenMP pools
    search(warm, np.zeros((1, emb.dim), np.float32), 1, "euclidean")
    base = _peak_mb()
    out: dict = {"rows": len(emb), "factory": factory, "threads": faiss.omp_get_max_threads(), "base_mb": base}
    if mode == "build":
        t = time.perf_counter()
        index = build_index(emb, "euclidean", factory, nprobe=32)
        out["build_s"] = time.perf_counter() - t
        out["build_peak_mb"] = _peak_mb()
        write_index(index, index_path)
        out["index_mb"] = Path(index_path).stat().st_size / 1e6
        exact = StoreRows(emb, emb.ids)  # row-addressable store vectors, for the exact re-scoring
        t = time.perf_counter()
        out["recall_plain"] = recall_at_1(index, emb, "euclidean", queries=QUERIES)
        out["recall_rerank"] = recall_at_1(index, emb, "euclidean", queries=QUERIES, exact=exact, rerank=64)
        out["recall_s"] = time.perf_counter() - t
        return out
    t = time.perf_counter()
    index = read_index(index_path, nprobe=32)
    out["load_s"] = time.perf_counter() - t
    out["load_mb"] = _peak_mb() - base
    out.update(describe(index))
    Q = clustered_vectors(0, emb.dim)(np.random.default_rng(99), 1000)
    search(index, Q[:10], 1, "euclidean")
    t = time.perf_counter()
    search(index, Q, 1, "euclidean")
    out["search_ms"] = 1000 * (time.perf_counter() - t) / len(Q)
    out["plain_peak_mb"] = _peak_mb() - base  # the index alone (its mapped lists' touched pages included)
    exact = StoreRows(emb, emb.ids)
    t = time.perf_counter()
    search(index, Q, 1, "euclidean", exact=exact, rerank=64)
    out["rerank_ms"] = 1000 * (time.perf_counter() - t) / len(Q)
    out["search_peak_mb"] = _peak_mb() - base
    return out


QUERIES = 500


def bench_ivfpq(sizes: list[int], dim: int, tmp: Path) -> list[str]:
    """IVF-PQ from a store, shard by shard: build time, peak memory, recall@1 vs exact, memory-mapped search."""
    import shutil

    lines = [f"Clustered float16 vectors (d = {dim}: 20,000 centres, spread in a 32-d subspace) in an embeddings store "
             f"of 16,384-row shards; IVF-PQ as the auto rule makes it above 1M vectors, nprobe 32; recall@1 leave-one-out over {QUERIES} stored "
             "rows against exact search; 1,000 fresh queries for the search time. Each step in a fresh process "
             "(peak RSS above that process after its imports and a tiny warm-up build).", "",
             "| vectors | index | store GB | write s | build s | build peak MB above base | index MB | "
             "recall@1 | recall@1, 64 re-ranked | mapped: MB to load | ms/query | ms/query re-ranked | "
             "RSS after the searches MB (mapped pages included) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        need = 2 * n * dim * 2 * 1.1 + 2e9
        free = shutil.disk_usage(tmp).free
        if need > free:
            lines.append(f"| {n:,} | skipped: the store needs {need / 1e9:.0f} GB, the disk has {free / 1e9:.0f} GB "
                         "free | | | | | | | | | | | |")
            continue
        root = tmp / f"gallery_{n}"
        t = time.perf_counter()
        make_store(root, n, dim, shard_size=16_384, draw=clustered_vectors(0, dim))
        written = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (root / "shards").iterdir()) / 1e9
        index_path = str(tmp / f"gallery_{n}.faiss")
        b = _run_probe("ivfpq", "build", str(root), index_path)
        print(json.dumps(b), file=sys.stderr, flush=True)
        q = _run_probe("ivfpq", "search", str(root), index_path)
        print(json.dumps(q), file=sys.stderr, flush=True)
        lines.append(f"| {n:,} | {b['factory']} | {size:.1f} | {written:.0f} | {b['build_s']:.0f} | "
                     f"{b['build_peak_mb'] - b['base_mb']:,.0f} | {b['index_mb']:,.0f} | {b['recall_plain']:.3f} | "
                     f"{b['recall_rerank']:.3f} | {q['load_mb']:,.0f} | {q['search_ms']:.2f} | {q['rerank_ms']:.2f} | "
                     f"{q['search_peak_mb']:,.0f} |")
        shutil.rmtree(root)
        Path(index_path).unlink()
    return lines


# ---------------------------------------------------------------- driver


def _probe_table(kind: str, modes: tuple[str, ...], path: Path, warm_up: Path) -> list[str]:
    """One row per mode: rows read, seconds, peak RSS and its rise above the warmed-up process."""
    lines = ["| read | rows | s | peak RSS MB | MB above the warmed-up process |", "|---|---|---|---|---|"]
    for mode in modes:
        r = _probe(kind, mode, str(path), str(warm_up))
        lines.append(f"| {mode} | {r['rows']:,} | {r['seconds']:.1f} | {r['peak_mb']:.0f} "
                     f"| {r['peak_mb'] - r['base_mb']:.0f} |")
    return lines


def _probe(kind: str, mode: str, path: str, warm_up: str) -> dict:
    """Run one memory probe in a fresh process, so its peak RSS is its own."""
    return _run_probe(kind, mode, path, warm_up)


def _run_probe(kind: str, mode: str, path: str, extra: str) -> dict:
    cmd = [sys.executable, __file__, "--probe", kind, mode, path, extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"probe {kind} {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["embed", "manifest", "embeddings", "ddp", "ivfpq"])
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=192, help="rows per shard in the embed part")
    parser.add_argument("--ray-workers", type=int, nargs="+", default=[1, 2], help="replica counts to compare")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU per replica)")
    parser.add_argument("--backbone", default=BACKBONE)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768, help="embedding size (768: CLIP ViT-B/16; the paper's ViT-L/14 gives "
                        "1024, so its vectors take 4/3 as much)")
    parser.add_argument("--ddp-rows", type=int, default=65_536)
    parser.add_argument("--ddp-cells", type=int, default=2_000)
    parser.add_argument("--ddp-batch", type=int, default=512, help="global batch of the ddp part")
    parser.add_argument("--ivf-sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--ivf-dim", type=int, default=1024)
    parser.add_argument("--tmp", default=None, help="folder for the generated data (default: a temporary one)")
    parser.add_argument("--probe", nargs=4, help=argparse.SUPPRESS)  # internal: one measurement, prints JSON
    args = parser.parse_args()
    if args.probe:
        kind, mode, path, extra = args.probe
        probes = {"manifest": manifest_probe, "embeddings": embeddings_probe, "ivfpq": ivfpq_probe,
                  "evaluate": evaluate_probe}
        print(json.dumps(probes[kind](mode, path, extra)))
        return
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        parts = {
            "embed": lambda: bench_embed(args.images, args.repeats, args.batch_size, args.shard_size,
                                         args.ray_workers, args.device, args.backbone),
            "manifest": lambda: bench_manifest(args.rows, Path(tmp)),
            "embeddings": lambda: bench_embeddings(args.rows, args.dim, Path(tmp)),
            "ddp": lambda: bench_ddp(args.ddp_rows, args.dim, args.ddp_cells, args.ddp_batch),
            "ivfpq": lambda: bench_ivfpq(args.ivf_sizes, args.ivf_dim, Path(tmp)),
            "evaluate": lambda: bench_evaluate(args.rows, Path(tmp)),
        }
        for part in args.parts:
            print(f"\n### {part}\n")
            print("\n".join(parts[part]()), flush=True)


if __name__ == "__main__":
    main()
