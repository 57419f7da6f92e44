"""Placing methods side by side: cell, refine, knn and geoclip (and combinations) on one bench.

Usage::

    python benchmarks/methods.py accuracy [--workdir /tmp/pigeon-methods] [--seeds 0 1 2]
    python benchmarks/methods.py speed [--sizes 100000 1000000]

``accuracy`` builds (or reuses) the ``pigeon demo`` dataset (1,000 Blue Marble locations x 4 views) and its
EfficientNet-Lite0 embeddings once, then for each seed and each split (the demo's random split, and its
region-held-out split: :data:`pigeon.demo.REGION_SPLIT`) trains the demo's recipe (semantic cells 8/25, the head,
the refiner) and the geoclip method on the same embeddings and training rows, with the same seed, and scores on the
test split: every radius, median km, GeoScore, country accuracy, and the training time of each stage. Besides the
registered methods it scores a combination over the gallery points (the training locations): the geoclip logit,
plus the kNN similarity of the point's own training image / T (x a weight), plus the log head probability of its
cell; T, the weight and the head term are chosen on the validation split (:data:`COMBO_GRID`).

``speed`` times one batch of 512 queries on synthetic galleries of each size (one subprocess each, so peak memory
is per size): geoclip scoring over the gallery features (256-d, the method's default, and 512-d, GeoCLIP's), the
refiner (exact scoring) and kNN (FAISS Flat, exact) over 1024-d embeddings, and the head alone.

Prints Markdown; writes JSON to ``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refine import _rss_mb, _timed, synthetic_refiner  # noqa: E402  (the refinement benchmark's helpers)

OUT = Path(__file__).resolve().parent / "out"
SHOWN = ("acc_1km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km", "median_km", "geoscore_mean", "country_acc")
METHODS = ("cell", "refine", "knn", "geoclip")


# ----------------------------------------------------------------------------------------------- accuracy
def bench_data(workdir: Path):
    """The demo's enriched dataset and its embeddings, made once in ``workdir``."""
    from pigeon.demo import DemoConfig, demo_dataset, demo_embeddings

    config = DemoConfig()
    df = demo_dataset(workdir / "data", config.n, config.views, config.seed)
    return df, demo_embeddings(df, workdir / "embeddings")


def split_of(df: pd.DataFrame, split: str, seed: int) -> pd.DataFrame:
    from pigeon.data.split import split_manifest
    from pigeon.demo import REGION_SPLIT

    return df if split == "random" else split_manifest(df, **REGION_SPLIT, seed=seed)


def train_all(df: pd.DataFrame, emb, seed: int, folder: Path) -> tuple[object, dict[str, float]]:
    """The demo recipe's cells and head, then the refiner and the geoclip method (each timed) on one split."""
    from pigeon.cells import GeoCells
    from pigeon.model import StoreRows, TrainConfig, build_artefacts, plan_artefacts, train
    from pigeon.model.geoclip import GeoClipConfig
    from pigeon.model.placers import TrainingData

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    train_df = df[df["split"] == "train"]
    cells = GeoCells.build(train_df["lat"], train_df["lon"], method="semantic", min_size=8, max_size=25, seed=seed)
    seconds["cells"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    geo = train(df, cells, emb, folder, TrainConfig(epochs=40, seed=seed), methods=["cell"], overwrite=True)
    seconds["cell"] = time.perf_counter() - t0
    data = {}
    for split in ("train", "val"):
        rows = df[df["split"] == split]
        coords = rows[["lat", "lon"]].to_numpy(np.float64)
        data[split] = TrainingData(rows["id"].to_numpy(), StoreRows(emb, rows["id"].to_numpy()), coords,
                                   cells.assign(coords[:, 0], coords[:, 1]), rows)
    training = TrainingData(*[getattr(data["train"], k) for k in ("ids", "X", "coords", "cells", "rows")],
                            val=data["val"])
    plan = plan_artefacts(["refine", "geoclip"], len(cells), {"geoclip": GeoClipConfig(seed=seed)})
    for name, step in plan.items():
        t0 = time.perf_counter()
        build_artefacts(geo, training, {name: step}, show_progress=False)
        seconds[{"refiner": "refine", "geoclip": "geoclip"}[name]] = time.perf_counter() - t0
    seconds["knn"] = seconds["refine"]  # the refiner's gallery
    return geo, seconds


def combined_scores(geo, X: np.ndarray, T: float, weight: float, head: bool) -> np.ndarray:
    """(N, G) scores of the geoclip gallery points (the training locations): the geoclip logit, plus ``weight`` x
    the kNN similarity of the point's training image / ``T``, plus the log head probability of its cell."""
    method, refiner = geo.artefacts["geoclip"], geo.refiner
    score = method.temperature * (method.image_features(X) @ method.features.T).numpy()
    if weight:
        gallery = refiner.gallery.set_index(refiner.gallery["id"].astype(str))
        pos = gallery.index.get_indexer(method.gallery["id"].astype(str))
        emb = np.asarray(refiner._gallery_emb, np.float32)[pos]
        sims = _unit(X) @ _unit(emb).T
        score = score + weight * sims / T
    if head:
        probs = geo.forward_embeddings(X)["probs"]
        score = score + np.log(np.maximum(probs[:, method.gallery["cell"].to_numpy()], 1e-30))
    return score


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


#: The combinations tried, chosen on the validation split: (T, weight of kNN, head).
COMBO_GRID = [(T, w, h) for T in (0.01, 0.03, 0.1) for w in (0.0, 0.5, 1.0) for h in (False, True)
              if (w, h) != (0.0, False)]


def choose_combo(geo, emb, val_df: pd.DataFrame) -> tuple[float, float, bool]:
    """The combination with the lowest validation median km (then the most within 200 km)."""
    from pigeon.evaluate import compute_metrics
    from pigeon.model import location_embeddings

    X = location_embeddings(emb, val_df["id"].to_numpy())
    coords = geo.artefacts["geoclip"].coords
    best = None
    for T, w, h in COMBO_GRID:
        latlon = coords[combined_scores(geo, X, T, w, h).argmax(1)]
        m = compute_metrics(pd.DataFrame({"id": val_df["id"].to_numpy(), "lat": latlon[:, 0],
                                          "lon": latlon[:, 1]}), val_df)
        key = (m["median_km"], -m["acc_200km"])
        if best is None or key < best[0]:
            best = (key, (T, w, h))
    return best[1]


def guesses(geo, X: np.ndarray, method) -> np.ndarray:
    """(N, 2) top-1 guesses of a registered ``method``, or of a combination ``(T, weight, head)``."""
    if isinstance(method, tuple):
        return geo.artefacts["geoclip"].coords[combined_scores(geo, X, *method).argmax(1)]
    return np.array([(p.lat, p.lon) for p in geo.predict_embeddings(X, top_k=1, method=method)])


def score_split(geo, emb, df: pd.DataFrame) -> dict[str, dict[str, float]]:
    from pigeon.evaluate import compute_metrics
    from pigeon.model import location_embeddings

    test_df = df[df["split"] == "test"]
    X = location_embeddings(emb, test_df["id"].to_numpy())
    combo = choose_combo(geo, emb, df[df["split"] == "val"])
    out = {}
    for name, method in [(m, m) for m in METHODS] + [("geoclip + knn + head (chosen on val)", combo)]:
        t0 = time.perf_counter()
        latlon = guesses(geo, X, method)
        ms = 1000 * (time.perf_counter() - t0) / len(X)
        pred = pd.DataFrame({"id": test_df["id"].to_numpy(), "lat": latlon[:, 0], "lon": latlon[:, 1]})
        out[name] = {**compute_metrics(pred, test_df), "predict_ms_per_image": ms}
    out["geoclip + knn + head (chosen on val)"]["combo"] = {"T": combo[0], "knn_weight": combo[1], "head": combo[2]}
    return out


def accuracy(args) -> None:
    from pigeon.evaluate import compute_metrics, mean_baseline

    df, emb = bench_data(args.workdir)
    OUT.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, list[dict]]] = {}
    for seed in args.seeds:
        for split in ("random", "region"):
            sdf = split_of(df, split, seed)
            geo, seconds = train_all(sdf, emb, seed, args.workdir / f"model-{split}-{seed}")
            scores = score_split(geo, emb, sdf)
            test_df = sdf[sdf["split"] == "test"]
            scores["spherical mean"] = compute_metrics(mean_baseline(sdf[sdf["split"] == "train"], test_df["id"]),
                                                       test_df)
            for method, metrics in scores.items():
                runs.setdefault(split, {}).setdefault(method, []).append(
                    {**metrics, "train_s": seconds.get(method), "seconds": seconds})
            print(f"seed {seed}, {split}: " + ", ".join(f"{m} {s['median_km']:.0f} km" for m, s in scores.items()),
                  file=sys.stderr)
            (OUT / "methods_accuracy.json").write_text(json.dumps(runs, indent=2, default=float))
    print_accuracy(runs, args.seeds)


def print_accuracy(runs: dict, seeds: list[int]) -> None:
    print(f"\nDemo data (1,000 Blue Marble locations x 4 views, EfficientNet-Lite0), test split; mean over seeds "
          f"{seeds} (± std of the median over seeds)\n")
    print("| split | method | " + " | ".join(SHOWN) + " | training s | predict ms/img |")
    print("|---|---|" + "---:|" * (len(SHOWN) + 2))
    for split, by_method in runs.items():
        for method, rs in by_method.items():
            cells = []
            for key in SHOWN:
                values = [r[key] for r in rs if r.get(key) is not None]
                if key.startswith("acc") or key == "country_acc":
                    cells.append(f"{100 * np.mean(values):.1f}")
                elif key == "median_km":
                    cells.append(f"{np.mean(values):,.0f} ± {np.std(values):,.0f}")
                else:
                    cells.append(f"{np.mean(values):,.0f}")
            train_s = [r["train_s"] for r in rs if r.get("train_s") is not None]
            predict = [r["predict_ms_per_image"] for r in rs if "predict_ms_per_image" in r]
            print(f"| {split} | {method} | " + " | ".join(cells)
                  + f" | {np.mean(train_s):.1f} |" * bool(train_s) + " - |" * (not train_s)
                  + (f" {np.mean(predict):.2f} |" if predict else " - |"))


# -------------------------------------------------------------------------------------------------- speed
def _gallery_seconds(n: int, dim: int, rng) -> float:
    """Seconds the gallery softmax takes for 512 queries over ``n`` random points of ``dim`` (freed on return)."""
    import torch

    from pigeon.model.geoclip import top_points

    points = torch.nn.functional.normalize(torch.randn(n, dim, generator=rng), dim=1)
    image = torch.nn.functional.normalize(torch.randn(512, dim, generator=rng), dim=1)
    return _timed(lambda: top_points(image, points, 40.0, 5))


def speed_one(n: int) -> dict:
    """Per-image times of each method over galleries of ``n`` points, in this process (512 queries)."""
    import torch

    out: dict = {"n": n}
    rng = torch.Generator().manual_seed(0)
    for dim in (256, 512):  # geoclip: the method's default space, and GeoCLIP's
        out[f"geoclip_{dim}d_ms"] = 1000 * _gallery_seconds(n, dim, rng) / 512
    with tempfile.TemporaryDirectory() as tmp:
        ref, Q, true_cell = synthetic_refiner(n, 1024, Path(tmp))
        cands = np.column_stack([true_cell, np.random.default_rng(1).integers(0, ref.n_cells, (len(Q), 4))])
        probs = np.full(cands.shape, 0.2)
        guess = ref.gallery[["lat", "lon"]].to_numpy()[:len(Q)]
        ref.refine(Q[:8], cands[:8], probs[:8], guess[:8])
        out["refine_exact_ms"] = 1000 * _timed(lambda: ref.refine(Q, cands, probs, guess)) / len(Q)
        ref.config = ref.config.replace(index="Flat")
        ref.nearest(Q[:8], 5)
        out["knn_flat_ms"] = 1000 * _timed(lambda: ref.nearest(Q[:128], 5), 2) / 128
    out["peak_rss_mb"] = round(_rss_mb())
    return out


def head_ms() -> float:
    """The demo head alone (2,000 cells would cost the same order): ms per image over 512 queries."""
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained("demo")
    X = np.random.default_rng(0).normal(size=(512, geo.head.cfg.in_dim)).astype(np.float32)
    geo.predict_embeddings(X[:8], method="cell")
    return 1000 * _timed(lambda: geo.predict_embeddings(X, top_k=5, method="cell")) / 512


def speed(args) -> None:
    results = []
    for n in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "speed-one", "--size", str(n)], capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    head = head_ms()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "methods_speed.json").write_text(json.dumps({"head_ms": head, "galleries": results}, indent=2))
    print(f"\nPer-image prediction time (ms), batches of 512 queries, best of 3; the head alone (cell method, demo "
          f"model, 139 cells, includes building the predictions): {head:.3f} ms\n")
    print("| gallery points | geoclip 256-d | geoclip 512-d (GeoCLIP) | refine, exact (1024-d) | knn, FAISS Flat "
          "(1024-d) | peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['n']:,} | {r['geoclip_256d_ms']:.2f} | {r['geoclip_512d_ms']:.2f} | {r['refine_exact_ms']:.2f} "
              f"| {r['knn_flat_ms']:.2f} | {r['peak_rss_mb']:,} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-methods"))
    acc.add_argument("--seeds", type=int, nargs="+", default=[0])
    sp = sub.add_parser("speed")
    sp.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    one = sub.add_parser("speed-one")
    one.add_argument("--size", type=int, required=True)
    args = parser.parse_args(argv)
    if args.part == "accuracy":
        accuracy(args)
    elif args.part == "speed":
        speed(args)
    else:
        print(json.dumps(speed_one(args.size)))


if __name__ == "__main__":
    main()
