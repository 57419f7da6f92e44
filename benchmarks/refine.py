"""Retrieval refinement: accuracy on the demo data, and latency / memory / recall at large galleries.

Usage::

    python benchmarks/refine.py accuracy [--workdir benchmarks/out/refine] [--split random|region]
    python benchmarks/refine.py speed [--sizes 100000,1000000] [--dims 1024,1280]

``accuracy`` builds (or reuses) the ``pigeon demo`` dataset, its embeddings and its geocell head (the demo's own
stages, default arguments), then compares on the same head, embeddings and split:

* the head alone (the top cell's centroid), the nearest training image over the whole gallery (kNN, the classic
  retrieval baseline), "nearest member in the top-5 cells" (refinement with T -> 0), and the refiner;
* the refiner's settings are swept on the **validation** split (noise policy, metric, K, T, move limit) and the
  best setting, together with the paper's street-view preset, is then reported once on the **test** split.

``--split region`` retrains the same recipe on a region-held-out split (every val/test location at least
``--buffer-km`` from every training location), where retrieval has no near neighbours.

``speed`` measures refinement on synthetic clustered galleries (one subprocess per size, so peak memory is per
size): the latency per image of exact and index cell scoring plus locating the nearest member, the FAISS
nearest-neighbour baseline (exact Flat, IVF and HNSW) with recall@1 against exact search, and the backbone +
head time per image on the same machine for the "adds x %" figure. Writes Markdown to stdout and JSON to
``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "out"
RADII = (1, 25, 200, 750, 2500)
SHOWN = [f"acc_{r}km" for r in RADII] + ["median_km", "geoscore_mean", "country_acc"]


# ----------------------------------------------------------------------------------------------- accuracy
def demo_model(workdir: Path, split: str, buffer_km: float):
    """The demo's data, embeddings and a head trained on ``split`` (the demo's stages, reused when present)."""
    from pigeon.cells import GeoCells
    from pigeon.demo import DemoConfig, demo_dataset, demo_embeddings
    from pigeon.model import Geolocator, TrainConfig, train

    config = DemoConfig()
    df = demo_dataset(workdir / "data", config.n, config.views, config.seed)
    emb = demo_embeddings(df, workdir / "embeddings")
    if split == "region":
        from pigeon.data import split_manifest

        df = split_manifest(df, by="region", buffer_km=buffer_km, seed=config.seed)
    folder = workdir / f"model-{split}"
    if not (folder / "config.json").is_file():
        train_df = df[df["split"] == "train"]
        cells = GeoCells.build(train_df["lat"], train_df["lon"], method="semantic", min_size=config.min_size,
                               max_size=config.max_size, seed=config.seed)
        train(df, cells, emb, folder, TrainConfig(epochs=config.epochs, seed=config.seed), refine=False,
              overwrite=True)
    return df, emb, Geolocator.from_pretrained(folder)


def _metrics(geo, X, truth: pd.DataFrame, method: str) -> dict[str, float]:
    from pigeon.evaluate import compute_metrics

    preds = geo.predict_embeddings(X, top_k=1, method=method)
    table = pd.DataFrame({"id": truth["id"].to_numpy(), "lat": [p.lat for p in preds], "lon": [p.lon for p in preds]})
    return compute_metrics(table, truth)


def accuracy(args) -> None:
    from pigeon.model import location_embeddings
    from pigeon.refine import RefineConfig, Refiner

    df, emb, geo = demo_model(args.workdir, args.split, args.buffer_km)
    train_df, val_df, test_df = (df[df["split"] == s] for s in ("train", "val", "test"))
    X = {name: location_embeddings(emb, part["id"].to_numpy()) for name, part in
         (("train", train_df), ("val", val_df), ("test", test_df))}
    coords = train_df[["lat", "lon"]].to_numpy()
    labels = geo.cells.assign(coords[:, 0], coords[:, 1])
    refiners = {}
    for noise in ("singletons", "drop"):
        for metric in ("euclidean", "cosine"):
            refiners[noise, metric] = Refiner.build(X["train"], coords, labels, geo.n_cells,
                                                    RefineConfig(noise=noise, metric=metric),
                                                    backbone=geo.backbone_id, show_progress=False)
    sweep = []
    for (noise, metric), ref in refiners.items():
        for K in (1, 3, 5, 10, 20):
            for T in (0.01, 0.03, 0.1, 0.3, 0.6, 1.6, 5.0, 1e9):
                for move in (1000.0, None):
                    geo.refiner = None
                    geo.set_refiner(_with(ref, top_k=min(K, geo.n_cells), temperature=T, max_move_km=move))
                    m = _metrics(geo, X["val"], val_df, "refine")
                    sweep.append({"noise": noise, "metric": metric, "top_k": K, "temperature": T,
                                  "max_move_km": move, **{k: m[k] for k in SHOWN}})
    sweep = pd.DataFrame(sweep)
    # best on validation: lowest median km, then highest share within 200 km
    best = sweep.sort_values(["median_km", "acc_200km"], ascending=[True, False]).groupby(["noise", "metric"]).head(1)

    rows: dict[str, dict[str, float]] = {}
    geo.refiner = None
    rows["head alone (cell centroid)"] = _metrics(geo, X["test"], test_df, "cell")
    geo.set_refiner(refiners["singletons", "euclidean"])
    rows["kNN (nearest training image)"] = _metrics(geo, X["test"], test_df, "knn")
    geo.refiner = None
    geo.set_refiner(_with(refiners["singletons", "euclidean"], temperature=1e-4, max_move_km=None))
    rows["nearest member in the top-5 cells (T -> 0)"] = _metrics(geo, X["test"], test_df, "refine")
    for noise in ("singletons", "drop"):
        geo.refiner = None
        geo.set_refiner(refiners[noise, "euclidean"])  # the street-view preset: K 5, T 1.6, max move 1000 km
        rows[f"refined, street-view preset, noise {noise}"] = _metrics(geo, X["test"], test_df, "refine")
    for _, b in best.iterrows():
        geo.refiner = None
        geo.set_refiner(_with(refiners[b["noise"], b["metric"]], top_k=int(b["top_k"]),
                              temperature=float(b["temperature"]),
                              max_move_km=None if pd.isna(b["max_move_km"]) else float(b["max_move_km"])))
        name = (f"refined, best on val ({b['noise']}, {b['metric']}, K {int(b['top_k'])}, T {b['temperature']:g}, "
                f"max move {b['max_move_km'] if not pd.isna(b['max_move_km']) else 'none'})")
        rows[name] = _metrics(geo, X["test"], test_df, "refine")
    table = pd.DataFrame(rows).T[SHOWN]
    OUT.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(OUT / f"refine_sweep_{args.split}.csv", index=False)
    (OUT / f"refine_accuracy_{args.split}.json").write_text(json.dumps(rows, indent=2, default=float))
    print(f"\n## Refinement on the demo data: {args.split} split, test set ({len(test_df)} locations), "
          f"{geo.n_cells} cells, {len(train_df)} gallery locations\n")
    print(_markdown(table))
    print("\nValidation sweep, best setting per noise policy and metric:\n")
    print(_markdown(best.set_index(["noise", "metric"])))
    print("\nMedian km on validation by K (rows) and T (columns), singletons + euclidean, max move 1000 km:\n")
    grid = sweep[(sweep["noise"] == "singletons") & (sweep["metric"] == "euclidean") & (sweep["max_move_km"] == 1000)]
    print(_markdown(grid.pivot(index="top_k", columns="temperature", values="median_km").round(0)))


def _with(ref, **changes):
    """The same refiner (shared gallery) with other query-time settings."""
    import copy

    other = copy.copy(ref)
    other.config = ref.config.replace(**changes)
    other._indexes = ref._indexes
    return other


def _markdown(table: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1 else f"{v:,.1f}"
        return str(v)

    table = table.reset_index()
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- speed
def synthetic_refiner(n: int, dim: int, folder: Path, seed: int = 0, cell_size: int = 45, cluster_size: int = 4):
    """A refiner over a synthetic clustered gallery of ``n`` float16 vectors in a memory-mapped file (no OPTICS:
    clusters are drawn directly), plus queries whose true cell is known."""
    from pigeon.refine import RefineConfig, Refiner

    rng = np.random.default_rng(seed)
    n_cells = max(1, n // cell_size)
    n_clusters = max(n_cells, n // cluster_size)
    cluster_cell = np.sort(rng.integers(0, n_cells, n_clusters))
    cluster_cell[:n_cells] = np.arange(n_cells)  # every cell has a cluster
    cluster_cell.sort()
    member_cluster = np.sort(rng.integers(0, n_clusters, n))
    member_cluster[:n_clusters] = np.arange(n_clusters)
    member_cluster.sort()
    cell_centres = rng.normal(size=(n_cells, dim)).astype(np.float32)
    cluster_centres = (cell_centres[cluster_cell] + 0.7 * rng.normal(size=(n_clusters, dim))).astype(np.float32)
    path = folder / "gallery.f16"
    gallery = np.memmap(path, dtype=np.float16, mode="w+", shape=(n, dim))
    for lo in range(0, n, 262_144):
        hi = min(n, lo + 262_144)
        gallery[lo:hi] = cluster_centres[member_cluster[lo:hi]] + 0.5 * rng.normal(size=(hi - lo, dim))
    gallery.flush()
    counts = np.bincount(member_cluster, minlength=n_clusters)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    sums = np.zeros((n_clusters, dim), np.float64)
    for lo in range(0, n, 262_144):
        np.add.at(sums, member_cluster[lo:lo + 262_144], gallery[lo:lo + 262_144].astype(np.float64))
    cluster_emb = (sums / counts[:, None]).astype(np.float16)
    lat = rng.uniform(-60, 70, n_cells)[cluster_cell[member_cluster]]
    lon = rng.uniform(-180, 180, n_cells)[cluster_cell[member_cluster]]
    table = pd.DataFrame({"id": np.arange(n), "lat": lat, "lon": lon, "cell": cluster_cell[member_cluster],
                          "cluster": member_cluster})
    clusters = pd.DataFrame({"cell": cluster_cell, "lat": 0.0, "lon": 0.0, "n_members": counts})
    ref = Refiner(RefineConfig(), table, clusters, np.memmap(path, dtype=np.float16, mode="r", shape=(n, dim)),
                  cluster_emb, n_cells)
    assert (ref.proto_ptr == ptr).all()
    q_rows = rng.choice(n, 512, replace=False)
    Q = (np.asarray(gallery[q_rows], np.float32) + 0.3 * rng.normal(size=(512, dim))).astype(np.float32)
    return ref, Q, table["cell"].to_numpy()[q_rows]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed_one(n: int, dim: int, parts: tuple[str, ...] = ("refine", "knn")) -> dict:
    """One gallery size in this process: refinement latency per image (next to the backbone + head time, measured
    interleaved in the same process), kNN indexes and their recall."""
    from pigeon.refine._index import build_index, search
    from pigeon.refine._search import prepare

    with tempfile.TemporaryDirectory(dir=os.environ.get("PIGEON_BENCH_TMP")) as tmp:
        t0 = time.perf_counter()
        ref, Q, true_cell = synthetic_refiner(n, dim, Path(tmp))
        out = {"n": n, "dim": dim, "clusters": len(ref.clusters), "cells": ref.n_cells,
               "make_s": round(time.perf_counter() - t0, 1), "rss_after_make_mb": round(_rss_mb())}
        rng = np.random.default_rng(1)
        B, K = len(Q), 5
        others = rng.integers(0, ref.n_cells, (B, K - 1))
        cands = np.column_stack([true_cell, others])
        probs = np.sort(rng.dirichlet(np.ones(K), B), axis=1)[:, ::-1]
        guess = ref.gallery[["lat", "lon"]].to_numpy()[:B]
        base = _backbone_head()
        for backend in ("exact", "index") if "refine" in parts else ():
            ref.config = ref.config.replace(search=backend, index="auto")
            if backend == "index":
                t0 = time.perf_counter()
                ref.index("clusters")
                out["cluster_index_build_s"] = round(time.perf_counter() - t0, 1)
                out["cluster_index"] = ref._index_type("clusters")
            ref.refine(Q[:8], cands[:8], probs[:8], guess[:8])  # warm-up
            secs, base_ms = math.inf, math.inf
            for _ in range(3):  # interleaved, so both see the same machine load
                secs = min(secs, _timed(lambda: ref.refine(Q, cands, probs, guess), 1))
                base_ms = min(base_ms, base())
            out[f"refine_{backend}_ms_per_image"] = round(1000 * secs / B, 3)
            out[f"backbone_head_ms_per_image_{backend}"] = round(base_ms, 2)
            out[f"refine_{backend}_correct_cell"] = float((ref.refine(Q, cands, probs, guess).cell == true_cell).mean())
        out["rss_after_refine_mb"] = round(_rss_mb())
        if "knn" not in parts:
            out["peak_rss_mb"] = round(_rss_mb())
            return out
        # kNN baseline: exact ground truth by chunks over the memory map, then FAISS indexes
        q = prepare(Q[:128], "euclidean")
        if n <= 2_000_000:
            flat = build_index(ref._gallery_emb, "euclidean", "Flat", 1)
            secs = _timed(lambda: search(flat, q, 1, "euclidean"), 2)
            truth = search(flat, q, 1, "euclidean")[1][:, 0]
            out["knn_flat_ms_per_image"] = round(1000 * secs / len(q), 3)
            del flat
        else:
            truth = _brute_force(ref._gallery_emb, q)
        for factory in (f"IVF{int(4 * math.sqrt(n))},Flat", "HNSW32") if n <= 2_000_000 else \
                (f"IVF{int(4 * math.sqrt(n))},PQ64",):
            t0 = time.perf_counter()
            index = build_index(ref._gallery_emb, "euclidean", factory, 32)
            build = time.perf_counter() - t0
            secs = _timed(lambda: search(index, q, 1, "euclidean"), 2)
            found = search(index, q, 1, "euclidean")[1][:, 0]
            out[f"knn {factory}"] = {"build_s": round(build, 1), "ms_per_image": round(1000 * secs / len(q), 3),
                                     "recall_at_1": float((found == truth).mean()), "rss_mb": round(_rss_mb())}
            del index
    out["peak_rss_mb"] = round(_rss_mb())
    return out


def _brute_force(gallery, q: np.ndarray) -> np.ndarray:
    best = np.full(len(q), np.inf)
    arg = np.zeros(len(q), np.int64)
    for lo in range(0, len(gallery), 262_144):
        block = np.asarray(gallery[lo:lo + 262_144], np.float32)
        d = (q * q).sum(1)[:, None] + (block * block).sum(1)[None] - 2 * q @ block.T
        i = d.argmin(1)
        better = d[np.arange(len(q)), i] < best
        best[better], arg[better] = d[np.arange(len(q)), i][better], lo + i[better]
    return arg


def _backbone_head():
    """A function timing one batch of 16 through the offline default backbone and the demo head (ms per image)."""
    import torch

    from pigeon.backbones import DEFAULT_BACKBONE, load
    from pigeon.model import Geolocator

    backbone = load(DEFAULT_BACKBONE, device="cpu")
    geo = Geolocator.from_pretrained("demo")
    pixels = torch.rand(16, 3, backbone.cfg.image_size, backbone.cfg.image_size)
    backbone.embed_pixels(pixels)
    return lambda: 1000 * _timed(lambda: geo.forward_embeddings(backbone.embed_pixels(pixels)), 1) / 16


def speed(args) -> None:
    results = []
    for dim in args.dims:
        for n in args.sizes:
            cmd = [sys.executable, __file__, "speed-one", "--size", str(n), "--dim", str(dim), "--parts",
                   ",".join(args.parts)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"refine_speed_{'_'.join(args.parts)}.json").write_text(json.dumps(results, indent=2))
    print("\nRefinement (batch of 512 queries, 5 candidate cells) next to the backbone (EfficientNet-Lite0, batch 16)"
          " + head, timed interleaved in the same process:\n")
    print("| gallery | dim | clusters | backbone + head (ms/img) | refine exact (ms/img) | adds | refine index "
          "(ms/img) | kNN Flat (ms/img) | kNN IVF (ms/img, recall@1) | kNN HNSW (ms/img, recall@1) | peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ivf = next((v for k, v in r.items() if k.startswith("knn IVF")), None)
        hnsw = r.get("knn HNSW32")
        cell = lambda v: f"{v['ms_per_image']:.2f} ({v['recall_at_1']:.2f})" if v else "-"  # noqa: E731
        base, exact = r.get("backbone_head_ms_per_image_exact", math.nan), r.get("refine_exact_ms_per_image", math.nan)
        print(f"| {r['n']:,} | {r['dim']} | {r['clusters']:,} | {base:.1f} | {exact:.2f} | {100 * exact / base:.1f} % | "
              f"{r.get('refine_index_ms_per_image', math.nan):.2f} | {r.get('knn_flat_ms_per_image', math.nan):.2f} | "
              f"{cell(ivf)} | {cell(hnsw)} | {r['peak_rss_mb']:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--workdir", type=Path, default=OUT / "refine")
    acc.add_argument("--split", choices=("random", "region"), default="random")
    acc.add_argument("--buffer-km", type=float, default=500.0)
    spd = sub.add_parser("speed")
    spd.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[100_000, 1_000_000])
    spd.add_argument("--dims", type=lambda s: [int(v) for v in s.split(",")], default=[1024, 1280])
    spd.add_argument("--parts", type=lambda s: tuple(s.split(",")), default=("refine", "knn"),
                     help="refine (refinement latency) and/or knn (nearest-neighbour indexes, slow to build)")
    one = sub.add_parser("speed-one")
    one.add_argument("--size", type=int, required=True)
    one.add_argument("--dim", type=int, required=True)
    one.add_argument("--parts", type=lambda s: tuple(s.split(",")), default=("refine", "knn"))
    args = parser.parse_args()
    if args.command == "accuracy":
        accuracy(args)
    elif args.command == "speed":
        speed(args)
    else:
        print(json.dumps(speed_one(args.size, args.dim, args.parts)))


if __name__ == "__main__":
    main()
