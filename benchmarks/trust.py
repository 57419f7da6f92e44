"""Answers people can trust: guesses by objective, calibration of P(within r), credible regions, the unseen-ground
score, and what the posterior costs.

Usage::

    nice -n 10 python benchmarks/trust.py [--n 3000] [--seeds 0 1 2] [--workdir /tmp/pigeon-trust]
                                          [--parts accuracy,cost]

``accuracy``: a Blue Marble set of ``--n`` locations x 4 views, enriched, embedded once with EfficientNet-Lite0
(``--workdir`` keeps both), and per seed three splits of it, each with the demo's recipe (semantic cells 8/25 on its
training rows, linear head, 40 epochs, refiner): ``random`` (80/10/10); ``region`` (the demo's region-held-out split:
50 k-means regions, whole regions to val or test, a 905 km buffer); ``region, seen val`` (the same training and
test rows, but validation drawn at random from the training regions, as a user with only a random validation split
has: the calibration then knows seen ground only, and the unseen score must recognise the test regions). Every
variant of a split uses the same head and embeddings: the head as trained (T = 1), calibrated (temperature and
unseen-ground flattening fitted on validation), calibrated and sharpened by retrieval; each with the three objectives.
The unseen-score AUROC separates the region-held-out test locations from random held-out locations of the training
regions (``region, seen val``: both sets unseen by training, only the second on seen ground).

``cost``: the posterior and the decision per query at 2,000 cells and a 1M-location gallery (synthetic), next to the
per-image time of the offline backbone + head (EfficientNet-Lite0, batch 16), timed interleaved in one process, both
on one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

SPLITS = ("random", "region", "region, seen val")
VARIANTS = ("head as trained (T = 1)", "calibrated", "calibrated, maps everywhere", "calibrated + sharpened")
#: the calibrated posterior with its P(within r) maps applied to every query in full, also beyond the similarities
#: validation saw (what pigeon did before ``Calibration.map_weight``): the same fit, read differently
MAPS_EVERYWHERE = VARIANTS[2]
RADII = (1, 25, 200, 750, 2500)


# ------------------------------------------------------------------------------------------------- accuracy
def make_splits(df: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """The three splits of the module docstring (``region, seen val`` also holds ``id_test`` rows: random rows of the
    training regions kept out of training, for the AUROC)."""
    from pigeon.data.split import split_manifest
    from pigeon.demo import REGION_SPLIT

    region = split_manifest(df, **REGION_SPLIT, seed=seed)
    seen = region.copy()
    train = np.flatnonzero(seen["split"].to_numpy() == "train")
    pick = np.random.default_rng(seed).permutation(train)
    n = len(train) // 9
    seen.loc[seen["split"] == "val", "split"] = None
    seen.iloc[pick[:n], seen.columns.get_loc("split")] = "val"
    seen.iloc[pick[n:2 * n], seen.columns.get_loc("split")] = "id_test"
    return {"random": split_manifest(df, by="random", seed=seed), "region": region, "region, seen val": seen}


def evaluate(geo, rows: pd.DataFrame, emb, guess: str) -> dict:
    """Metrics and calibration of one objective on ``rows``."""
    from pigeon.evaluate import calibration_metrics, match_predictions
    from pigeon.evaluate._metrics import summarize
    from pigeon.model import predict_manifest

    pred = predict_manifest(geo, rows, emb, top_k=5, guess=guess)
    joined = match_predictions(pred, rows)
    first = pred[pred["rank"] == 1]
    return {**summarize(joined), **(calibration_metrics(pred, joined, geo.cells) or {}),
            "unseen": first["unseen"].to_numpy(np.float64).tolist() if "unseen" in first else None}


def run_split(split_df: pd.DataFrame, emb, seed: int, out: Path) -> dict:
    """Train once; every variant x objective on the test rows (and the calibrated variant on validation)."""
    from pigeon.cells import GeoCells
    from pigeon.evaluate import compute_metrics, mean_baseline
    from pigeon.model import TrainConfig, calibrate, train
    from pigeon.model._views import location_embeddings
    from pigeon.posterior import GUESSES, Calibration

    train_df, test_df = split_df[split_df["split"] == "train"], split_df[split_df["split"] == "test"]
    val_df = split_df[split_df["split"] == "val"]
    cells = GeoCells.build(train_df["lat"], train_df["lon"], method="semantic", min_size=8, max_size=25, seed=0)
    t0 = time.perf_counter()
    geo = train(split_df, cells, emb, out, TrainConfig(epochs=40, seed=seed), overwrite=True)
    X_val = location_embeddings(emb, val_df["id"].astype(str).to_numpy(), geo.view_rule)
    coords_val = val_df[["lat", "lon"]].to_numpy(np.float64)
    result = {"n": {"train": len(train_df), "val": len(val_df), "test": len(test_df), "cells": len(cells)},
              "train_s": time.perf_counter() - t0, "variants": {}, "val": {}, "fits": {},
              "baseline": compute_metrics(mean_baseline(train_df, test_df["id"]), test_df)}
    for variant in VARIANTS:
        if variant == VARIANTS[0]:
            geo.calibration = Calibration()
        elif variant == MAPS_EVERYWHERE:
            geo.calibration = _maps_everywhere().from_dict(geo.calibration.to_dict())  # still the calibrated fit
        else:
            calibrate(geo, X_val, coords_val, sharpen=variant.endswith("sharpened"))
            result["fits"][variant] = {k: v for k, v in geo.calibration.to_dict().items() if k != "reference"}
        result["variants"][variant] = {g: evaluate(geo, test_df, emb, g) for g in GUESSES}
        if variant == "calibrated":
            result["val"] = {g: evaluate(geo, val_df, emb, g) for g in GUESSES}
            if (split_df["split"] == "id_test").any():
                result["id_test_unseen"] = evaluate(geo, split_df[split_df["split"] == "id_test"], emb,
                                                    "mode")["unseen"]
    return result


def _maps_everywhere():
    from pigeon.posterior import Calibration

    class MapsEverywhere(Calibration):
        def map_weight(self, unseen):
            return np.ones(len(unseen))

    return MapsEverywhere


def auroc(seen: list[float], unseen: list[float]) -> float:
    """P(an unseen-ground location scores higher than a seen-ground one), ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([seen, unseen]))
    n0, n1 = len(seen), len(unseen)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def accuracy(args) -> dict:
    from pigeon.demo import demo_dataset, demo_embeddings

    df = demo_dataset(args.workdir / "data", n=args.n, views=args.views, seed=0)
    emb = demo_embeddings(df, args.workdir / "emb", args.backbone)
    runs: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for seed in args.seeds:
        for name, split_df in make_splits(df, seed).items():
            print(f"seed {seed}: {name}", flush=True)
            runs[name].append(run_split(split_df, emb, seed, args.workdir / "models" / f"{name}_{seed}"))
    for r in runs["region, seen val"]:
        r["auroc"] = auroc(r["id_test_unseen"], r["variants"]["calibrated"]["mode"]["unseen"])
    (args.workdir / "trust_accuracy.json").write_text(json.dumps(runs, indent=1, default=float))
    return runs


def _mean(values, pattern="{:.0f}", spread=False) -> str:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "n/a"
    text = pattern.format(np.mean(values))
    return text + (" ± " + pattern.format(np.std(values)) if spread and len(values) > 1 else "")


def accuracy_tables(runs: dict) -> str:
    lines = []
    for split, seeds in runs.items():
        lines += [f"\n**{split}** ({_mean([s['n']['train'] for s in seeds])} train / "
                  f"{_mean([s['n']['val'] for s in seeds])} val / {_mean([s['n']['test'] for s in seeds])} test, "
                  f"{_mean([s['n']['cells'] for s in seeds])} cells; mean over seeds {len(seeds)})\n",
                  "| posterior | guess | 1 km | 25 km | 200 km | 750 km | 2500 km | median km | GeoScore | "
                  "ECE 200 / 750 / 2500 km | 90 % region: coverage, area (km²) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for variant in VARIANTS:
            for guess in ("mode", "distance", "score"):
                ms = [s["variants"][variant][guess] for s in seeds]
                acc = [_mean([100 * m[f"acc_{r}km"] for m in ms], "{:.1f}") for r in RADII]
                ece = " / ".join(_mean([m.get(f"ece_{r}km") for m in ms], "{:.3f}") for r in (200, 750, 2500))
                region = (f"{_mean([100 * (m.get('credible_coverage') or np.nan) for m in ms], '{:.0f}')} %, "
                          f"{_mean([m.get('credible_area_km2_mean') for m in ms], '{:,.0f}')}")
                lines.append(f"| {variant} | {guess} | " + " | ".join(acc) +
                             f" | {_mean([m['median_km'] for m in ms], spread=True)} | "
                             f"{_mean([m['geoscore_mean'] for m in ms], spread=True)} | {ece} | {region} |")
        base = [s["baseline"] for s in seeds]
        lines.append("| training set's spherical mean | | " + " | ".join(
            _mean([100 * m[f"acc_{r}km"] for m in base], "{:.1f}") for r in RADII) +
            f" | {_mean([m['median_km'] for m in base], spread=True)} | "
            f"{_mean([m['geoscore_mean'] for m in base], spread=True)} | | |")
        fits = [s["fits"]["calibrated"] for s in seeds]
        temps = ", ".join(f"{f['temperature']:.2f}" for f in fits)
        lines.append(f"\nFitted on validation: T = {temps}; "
                     f"flattening (a, b) = {', '.join(str(_round(f['flatten'])) for f in fits)}; "
                     f"sharpening T = {', '.join(_round(s['fits'][VARIANTS[-1]]['sharpen_temperature']) for s in seeds)}."
                     f" Validation NLL of the true cell, as trained -> calibrated -> sharpened: " + "; ".join(
                         f"{s['fits']['calibrated']['validation']['nll_before']:.2f} -> "
                         f"{s['fits']['calibrated']['validation']['nll_after']:.2f} -> "
                         f"{s['fits'][VARIANTS[-1]]['validation']['nll_after']:.2f}" for s in seeds) + ".")
        val = {g: [s["val"][g] for s in seeds] for g in ("mode", "distance", "score")}
        lines.append("On validation (calibrated): median km " + ", ".join(
            f"{g} {_mean([m['median_km'] for m in ms])}" for g, ms in val.items()) + "; GeoScore " + ", ".join(
            f"{g} {_mean([m['geoscore_mean'] for m in ms])}" for g, ms in val.items()) + ".")
        if "auroc" in seeds[0]:
            values = [s["auroc"] for s in seeds]
            lines.append("Unseen-ground AUROC (region test vs random held-out rows of the training regions): "
                         + ", ".join(f"{v:.3f}" for v in values) + f" (mean {np.mean(values):.3f}).")
    return "\n".join(lines)


def _round(value):
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(f"{v:.2f}" for v in value) + ")"
    return f"{value:.2g}"


# ----------------------------------------------------------------------------------------------------- cost
def synthetic_support(n_cells: int = 2000, n_gallery: int = 1_000_000, seed: int = 0):
    """2,000 cells over the land-like latitudes and a 1M-location gallery around their centroids."""
    from pigeon.geo import wrap_lon
    from pigeon.posterior import CellSupport

    rng = np.random.default_rng(seed)
    centroids = np.column_stack([rng.uniform(-55, 70, n_cells), rng.uniform(-180, 180, n_cells)])
    cell = rng.integers(0, n_cells, n_gallery)
    latlon = centroids[cell] + rng.normal(0, 1.2, (n_gallery, 2))
    latlon[:, 0] = latlon[:, 0].clip(-89, 89)
    latlon[:, 1] = wrap_lon(latlon[:, 1])
    t0 = time.perf_counter()
    support = CellSupport.build(centroids, np.full(n_cells, 6e4), latlon, cell)
    _ = support.cell_km, support.cell_score
    return support, time.perf_counter() - t0


def posterior_step(support, probs, calibration, similarity, guess: str) -> None:
    """Everything the posterior stage adds to a prediction: calibrated masses, the guess, P(within r), the expected
    error, the credible region and the candidates shown."""
    from pigeon.model._answer import Answers
    from pigeon.model._prediction import place_by_centroid, top_cells
    from pigeon.posterior import Posterior

    masses, unseen = calibration.masses(probs, support.prior, similarity=similarity)
    placement = place_by_centroid(top_cells(probs, 5), support.centroids, probs)
    answers = Answers(Posterior(masses, support), placement, guess, 0.9, 5, unseen)
    _ = answers.expected_km, answers.p_within, answers.regions  # computed on first read, as a served answer reads them


def cost(args) -> list[dict]:
    """Both sides on one thread (torch and BLAS): on a shared, oversubscribed machine two threads each measure the
    contention more than the work."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return _cost(args)


def _cost(args) -> list[dict]:
    from refine import _backbone_head, _timed

    from pigeon.posterior import Calibration

    support, build_s = synthetic_support()
    rng = np.random.default_rng(1)
    B = 512
    logits = rng.normal(0, 1.5, (B, len(support)))
    logits[np.arange(B), rng.integers(0, len(support), B)] += 9.0  # a confident head
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    calibration = Calibration(temperature=1.3, flatten=(-6.0, 1.0), reference=tuple(np.linspace(-1.2, -0.2, 201)),
                              n_val=1000)
    similarity = rng.normal(-0.6, 0.3, B)
    base = _backbone_head()
    rows = []
    for regime, sim in (("seen ground", similarity), ("unseen ground (flattened)", similarity - 3.0)):
        for guess in ("mode", "distance", "score"):
            posterior_step(support, probs[:8], calibration, sim[:8], guess)  # warm-up
            secs, base_ms = math.inf, math.inf
            for _ in range(3):  # interleaved: both see the same machine load
                secs = min(secs, _timed(lambda: posterior_step(support, probs, calibration, sim, guess), 1))
                base_ms = min(base_ms, base())
            rows.append({"regime": regime, "guess": guess, "posterior_ms": 1000 * secs / B, "backbone_ms": base_ms})
            print(rows[-1], flush=True)
    for r in rows:
        r["support_build_s"] = build_s
    (args.workdir / "trust_cost.json").write_text(json.dumps(rows, indent=1))
    return rows


def cost_table(rows: list[dict]) -> str:
    lines = [f"\nPosterior cost at 2,000 cells and a 1M-location gallery (support built once per model in "
             f"{rows[0]['support_build_s']:.1f} s; batches of 512 queries; one thread each):\n",
             "| ground | guess | posterior + decision (ms/query) | backbone + head (ms/img) | adds |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {r['regime']} | {r['guess']} | {r['posterior_ms']:.2f} | {r['backbone_ms']:.1f} | "
              f"{100 * r['posterior_ms'] / r['backbone_ms']:.1f} % |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-trust"))
    parser.add_argument("--parts", default="accuracy,cost")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--backbone", default=None, help="registry name (default: the offline EfficientNet-Lite0)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    text = ""
    if "accuracy" in parts:
        text += accuracy_tables(accuracy(args))
    if "cost" in parts:
        text += cost_table(cost(args))
    print(text)
    (args.workdir / "trust.md").write_text(text)


if __name__ == "__main__":
    main()
