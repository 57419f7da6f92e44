"""Geolocator head: training throughput, prediction latency per image (backbone vs head) and memory.

Usage::

    python benchmarks/head.py [--cells 2000] [--samples 20000] [--dims 1280 1024] [--device cpu]

Training throughput: samples/s of the head-training loop (forward, haversine label smoothing over all cells,
backward, AdamW) on random embeddings, for the paper's linear head (with the auxiliary heads) and an MLP head. The
time is the engine's per-epoch ``seconds``, which covers the training steps only (validation is ``val_seconds``).
Latency: one image through the offline default backbone (EfficientNet-Lite0, preprocessing included) and
through the head (softmax over the cells, top-5, candidates with place names), median of repeated runs.
Memory: head parameters and the peak resident memory of the process (``ru_maxrss``). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _toy_cells(n: int, rng: np.random.Generator):
    """Cells as the Geolocator uses them (centroids and a table), without building real geocells."""
    import geopandas as gpd
    from shapely.geometry import Point

    lat, lon = rng.uniform(-60, 70, n), rng.uniform(-180, 180, n)

    class Cells:
        centroids = np.column_stack([lat, lon])
        table = gpd.GeoDataFrame({"country": ["XX"] * n, "admin1": ["region"] * n},
                                 geometry=[Point(x, y).buffer(1) for x, y in zip(lon, lat)])

        def __len__(self):
            return n

    return Cells()


def train_throughput(n_samples: int, dim: int, n_cells: int, hidden: int | None, device: str) -> tuple[float, float]:
    """Samples per second of the training steps of one epoch of :func:`pigeon.model.fit_head` (the engine times
    validation separately, as ``val_seconds``), best of the epochs."""
    from pigeon.model import AuxTargets, TrainConfig, fit_head

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_samples, dim)).astype(np.float32)
    coords = np.column_stack([rng.uniform(-60, 70, n_samples), rng.uniform(-180, 180, n_samples)])
    centroids = np.column_stack([rng.uniform(-60, 70, n_cells), rng.uniform(-180, 180, n_cells)])
    cells = rng.integers(0, n_cells, n_samples)
    aux = AuxTargets(climate=rng.integers(0, 31, n_samples), climate_classes=tuple(map(str, range(31))),
                     month=rng.integers(0, 12, n_samples), regression=rng.normal(size=(n_samples, 6)) ** 2,
                     regression_columns=("elevation_m", "pop_density", "temp_mean_c", "temp_range_c",
                                         "precip_mm", "precip_range_mm"))
    val = (X[:256], coords[:256], cells[:256])
    config = TrainConfig(epochs=2, hidden_dim=hidden, device=device, patience=10)
    result = fit_head(X, coords, cells, centroids, aux=aux, val=val, config=config)
    best = min(result.history, key=lambda r: r["seconds"])
    return n_samples / best["seconds"], best["val_seconds"] / (best["seconds"] + best["val_seconds"])


def latency(n_cells: int, repeats: int, device: str) -> dict[str, float]:
    """Median ms per single image: backbone (preprocess + forward) and head (+ candidates)."""
    from PIL import Image

    from pigeon.backbones import DEFAULT_BACKBONE, load
    from pigeon.model import Geolocator, GeolocatorHead, HeadConfig

    backbone = load(DEFAULT_BACKBONE, device=device)
    head = GeolocatorHead(HeadConfig(in_dim=backbone.embed_dim, n_cells=n_cells, n_climate=31, n_months=12))
    geo = Geolocator(head.to(device), _toy_cells(n_cells, np.random.default_rng(0)),
                     {"backbone": DEFAULT_BACKBONE, "climate_classes": [str(i) for i in range(31)]}, backbone=backbone)
    path = Path(tempfile.mkdtemp()) / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path)
    timings: dict[str, list[float]] = {"backbone_ms": [], "head_ms": []}
    geo.predict(path)  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        x = geo.embed(path)
        t1 = time.perf_counter()
        geo.predict_embeddings(x, top_k=5)
        t2 = time.perf_counter()
        timings["backbone_ms"].append(1e3 * (t1 - t0))
        timings["head_ms"].append(1e3 * (t2 - t1))
    return {k: statistics.median(v) for k, v in timings.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--dims", type=int, nargs="+", default=[1280, 1024])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"## Head training throughput ({args.samples} samples, {args.cells} cells, batch 256, device {args.device}, "
          f"{torch.get_num_threads()} threads)\n")
    print("| embedding dim | head | samples/s | parameters | validation share of an epoch (not timed) |")
    print("|---|---|---|---|---|")
    for dim in args.dims:
        for hidden in (None, 1024):
            rate, val_share = train_throughput(args.samples, dim, args.cells, hidden, args.device)
            width = dim if hidden is None else hidden
            params = width * args.cells + args.cells + (0 if hidden is None else dim * hidden + hidden)
            name = "linear (+aux)" if hidden is None else f"MLP {hidden} (+aux)"
            print(f"| {dim} | {name} | {rate:,.0f} | {params / 1e6:.2f} M | {100 * val_share:.1f} % |", flush=True)

    lat = latency(args.cells, args.repeats, args.device)
    print(f"\n## Prediction latency per image (EfficientNet-Lite0, {args.cells} cells, median of {args.repeats})\n")
    print("| backbone (load + preprocess + forward) | head (softmax, top-5, candidates) | total |")
    print("|---|---|---|")
    print(f"| {lat['backbone_ms']:.1f} ms | {lat['head_ms']:.2f} ms | {sum(lat.values()):.1f} ms |")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024 ** 2)
    head_mb = (1280 + 1) * args.cells * 4 / 1e6
    print(f"\nPeak resident memory of this process: {peak_mb:,.0f} MB "
          f"(a linear head over {args.cells} cells at 1280-d is {head_mb:.1f} MB of float32).")


if __name__ == "__main__":
    main()
