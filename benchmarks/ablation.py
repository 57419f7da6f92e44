"""Ablation of the geolocator on the embedded Blue Marble dataset (PIGEON paper Table 2, in miniature).

Usage::

    python benchmarks/ablation.py [--n 1000] [--epochs 40] [--seeds 0 1 2] [--workdir /tmp/pigeon-ablation]

Builds (or reuses, in ``--workdir``) the Blue Marble dataset with 4 views per location, enriches it with the
auxiliary columns, embeds every view with the offline default backbone (EfficientNet-Lite0), builds semantic
geocells on the training split and naive cells with about the same count, then trains on the same split:

* ``full``: semantic cells, haversine label smoothing, 4-view average, auxiliary heads
* ``one-hot``: cross-entropy on the true cell instead of label smoothing
* ``naive cells``: naive (rectangular, quadtree) cells of about the same count
* ``single view, off-centre``: only view 0 of each 4-view location, in training and at test time; its centre is
  320 km (half a view) from the location, so this mixes "fewer views" with "the view is not on the location"
* ``single view, centred``: the same locations drawn as one view centred on the location (a 1-view Blue Marble
  dataset with the same seed: same locations and split, its own embeddings). Against ``full`` it measures
  "fewer views" alone; against the off-centre variant, "off-centre view" alone
* ``no aux``: without the auxiliary heads
* ``MLP head`` / ``MLP head, no aux``: a 512-wide hidden layer shared by the geocell and auxiliary heads (with
  the paper's linear head on frozen embeddings the auxiliary heads share no parameter with the geocell head,
  so ``no aux`` cannot differ from ``full``; the MLP pair measures the multi-task effect instead)

and reports the test-split metrics (``pigeon.evaluate.compute_metrics``) as mean ± std over the training seeds,
with the "always guess the training set's spherical mean" baseline. Prints Markdown and writes
``WORKDIR/ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

VARIANTS = {
    "full": {},
    "one-hot": {"smoothing": False},
    "naive cells": {"cells": "naive"},
    "single view, off-centre": {"views": "first"},
    "single view, centred": {"data": "centred"},
    "no aux": {"aux": False},
    "MLP head": {"hidden_dim": 512},
    "MLP head, no aux": {"hidden_dim": 512, "aux": False},
}
SHOWN = ("median_km", "mean_km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km", "country_acc", "geoscore_mean")


def prepare(workdir: Path, n: int, seed: int) -> dict[str, tuple[pd.DataFrame, object]]:
    """The enriched 4-view dataset, the centred 1-view one with the same locations, and their embeddings.

    Made once and reused (the demo's own stages).
    """
    from pigeon.demo import demo_dataset, demo_embeddings

    four = demo_dataset(workdir / "data", n=n, views=4, seed=seed)
    centred = demo_dataset(workdir / "data_centred", n=n, views=1, seed=seed)
    for column in ("id", "lat", "lon", "split"):  # the same seed draws the same locations and split
        if four[column].tolist() != centred[column].tolist():
            raise RuntimeError(f"the 1-view and 4-view datasets differ in {column}; rebuild --workdir")
    return {"4-view": (four, demo_embeddings(four, workdir / "emb")),
            "centred": (centred, demo_embeddings(centred, workdir / "emb_centred"))}


def build_cells(train: pd.DataFrame, min_size: int, max_size: int, workdir: Path):
    """Semantic cells, and naive cells whose count is the closest to theirs (cached in ``workdir``)."""
    from pigeon.cells import GeoCells

    folders = {"semantic": workdir / f"cells_semantic_{min_size}_{max_size}", "naive": workdir / "cells_naive"}
    if all((f / "meta.json").is_file() for f in folders.values()):
        return {k: GeoCells.load(f) for k, f in folders.items()}
    lat, lon = train["lat"].to_numpy(), train["lon"].to_numpy()
    semantic = GeoCells.build(lat, lon, method="semantic", min_size=min_size, max_size=max_size, seed=0)
    best = None
    for size in range(2, 4 * max_size):
        naive = GeoCells.build(lat, lon, method="naive", min_size=max(1, size // 2), max_size=size, seed=0)
        if best is None or abs(len(naive) - len(semantic)) < abs(len(best) - len(semantic)):
            best = naive
        if len(naive) < len(semantic):
            break
    cells = {"semantic": semantic, "naive": best}
    for k, f in folders.items():
        cells[k].save(f)
    return cells


def run_variant(name: str, data: dict, cells: dict, epochs: int, seed: int, workdir: Path) -> dict:
    """Train one variant and evaluate it on the test split."""
    from pigeon.evaluate import compute_metrics
    from pigeon.model import TrainConfig, predict_manifest, train

    spec = dict(VARIANTS[name])
    which = spec.pop("cells", "semantic")
    df, emb = data[spec.pop("data", "4-view")]
    config = TrainConfig(epochs=epochs, seed=seed, **spec)
    out = workdir / "models" / f"{name.replace(' ', '_').replace(',', '')}_seed{seed}"
    t0 = time.perf_counter()
    geo = train(df, cells[which], emb, out, config, overwrite=True)
    seconds = time.perf_counter() - t0
    test = df[df["split"] == "test"]
    metrics = compute_metrics(predict_manifest(geo, test, emb, top_k=1), test)
    return {**metrics, "train_seconds": seconds, "n_cells": len(cells[which]),
            "best_epoch": json.loads((out / "metrics.json").read_text())["best_epoch"]}


def baseline(df: pd.DataFrame) -> dict:
    from pigeon.evaluate import compute_metrics, mean_baseline

    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    return compute_metrics(mean_baseline(train, test["id"]), test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="locations in the dataset")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-size", type=int, default=8, help="semantic cells: min training samples per cell")
    parser.add_argument("--max-size", type=int, default=25, help="semantic cells: max training samples per cell")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-ablation"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)

    data = prepare(args.workdir, args.n, args.data_seed)
    df = data["4-view"][0]
    cells = build_cells(df[df["split"] == "train"], args.min_size, args.max_size, args.workdir)
    runs = {name: [run_variant(name, data, cells, args.epochs, s, args.workdir) for s in args.seeds]
            for name in args.variants}
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "n_test": int((df["split"] == "test").sum()),
              "n_train": int((df["split"] == "train").sum()), "baseline": baseline(df), "runs": runs}
    (args.workdir / "ablation.json").write_text(json.dumps(result, indent=2, default=float))

    print(f"Blue Marble, {args.n} locations x 4 views, {result['n_train']} train / {result['n_test']} test, "
          f"EfficientNet-Lite0 embeddings; {len(cells['semantic'])} semantic / {len(cells['naive'])} naive cells; "
          f"mean ± std over seeds {args.seeds}\n")
    print("| variant | " + " | ".join(SHOWN) + " | train s |")
    print("|---|" + "---|" * (len(SHOWN) + 1))
    for name, rs in runs.items():
        cells_txt = " | ".join(_mean_std([r[k] for r in rs], k) for k in SHOWN)
        print(f"| {name} | {cells_txt} | {np.mean([r['train_seconds'] for r in rs]):.0f} |")
    b = result["baseline"]
    print("| spherical-mean baseline | " + " | ".join(_mean_std([b[k]], k) for k in SHOWN) + " | - |")


def _mean_std(values: list, key: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    scale, fmt = (100, ".1f") if key.startswith("acc") or key == "country_acc" else (1, ".0f")
    mean, std = scale * np.mean(values), scale * np.std(values)
    return f"{mean:{fmt}} ± {std:{fmt}}" if len(values) > 1 else f"{mean:{fmt}}"


if __name__ == "__main__":
    main()
