"""Scale-out: Ray embedding throughput against the single-process path, and memory of streamed against in-memory reads.

Usage::

    python benchmarks/scale.py [--parts embed manifest embeddings] [--images 384] [--rows 1000000] [--dim 768]

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
- ``ddp``, ``ivfpq``: hooks for the DDP step time and the IVF-PQ gallery (issue 15, items 3 and 4), not measured yet.

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


# ---------------------------------------------------------------- embeddings: in memory vs streamed


def make_store(root: Path, rows: int, dim: int, shard_size: int = 4096) -> None:
    """A complete ``rows`` x ``dim`` store of random float16 vectors (one view a row), without a backbone."""
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
        x = rng.standard_normal((len(shard), dim), dtype=np.float32)
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


def bench_ddp() -> list[str]:
    """DDP step time, 1 vs 2 processes: to be written with the torchrun training engine (issue 15, item 3)."""
    return ["not measured yet: needs the DDP training engine (issue 15, item 3)"]


def bench_ivfpq() -> list[str]:
    """IVF-PQ build time, memory and recall@1 at 1M and 10M vectors: with the large galleries (issue 15, item 4)."""
    return ["not measured yet: needs the IVF-PQ galleries (issue 15, item 4)"]


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
    cmd = [sys.executable, __file__, "--probe", kind, mode, path, warm_up]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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
    parser.add_argument("--tmp", default=None, help="folder for the generated data (default: a temporary one)")
    parser.add_argument("--probe", nargs=4, help=argparse.SUPPRESS)  # internal: one measurement, prints JSON
    args = parser.parse_args()
    if args.probe:
        kind, mode, path, warm_up = args.probe
        print(json.dumps((manifest_probe if kind == "manifest" else embeddings_probe)(mode, path, warm_up)))
        return
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        parts = {
            "embed": lambda: bench_embed(args.images, args.repeats, args.batch_size, args.shard_size,
                                         args.ray_workers, args.device, args.backbone),
            "manifest": lambda: bench_manifest(args.rows, Path(tmp)),
            "embeddings": lambda: bench_embeddings(args.rows, args.dim, Path(tmp)),
            "ddp": bench_ddp,
            "ivfpq": bench_ivfpq,
        }
        for part in args.parts:
            print(f"\n### {part}\n")
            print("\n".join(parts[part]()), flush=True)


if __name__ == "__main__":
    main()
