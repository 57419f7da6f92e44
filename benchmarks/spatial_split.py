"""Random vs spatially separated splits on the demo data, with each effect measured on its own.

Usage::

    python benchmarks/spatial_split.py [--n 1000] [--seeds 0 1 2] [--workdir /tmp/pigeon-ablation]

The demo's recipe (semantic cells 8/25 on the training rows, linear head with haversine smoothing and the
auxiliary heads, 40 epochs max) on the enriched 4-view Blue Marble dataset and its EfficientNet-Lite0
embeddings (made once in ``--workdir``, shared with ``benchmarks/ablation.py``), trained and evaluated on:

* ``random``: the dataset's own random split (the demo's headline);
* ``random, fewer training rows``: the same test rows, training rows subsampled to the count of the buffered
  region split, so "less training data" is measured apart from "new ground";
* ``region, no buffer``: 50 k-means regions, whole regions held out;
* ``region, 905 km buffer``: the same, and training rows closer than 905 km to a val/test row (view centres
  included) left out, so no training view overlaps a test view (the demo's region-held-out run).

Test metrics are the mean ± std over the training seeds (``pigeon.evaluate.compute_metrics``); the last
column is the median distance from a test location to the nearest training location. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

SHOWN = ("median_km", "acc_200km", "acc_750km", "acc_2500km", "country_acc", "geoscore_mean")


def splits(df: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """The four splits of the module docstring, as manifests with a ``split`` column."""
    from pigeon.data.split import split_manifest
    from pigeon.demo import REGION_SPLIT

    region = split_manifest(df, **REGION_SPLIT, seed=seed)
    fewer = df.copy()
    train = np.flatnonzero(fewer["split"] == "train")
    n_keep = int((region["split"] == "train").sum())
    drop = np.random.default_rng(seed).choice(train, len(train) - n_keep, replace=False)
    fewer.loc[fewer.index[drop], "split"] = None
    return {"random": df, "random, fewer training rows": fewer,
            "region, no buffer": split_manifest(df, **{**REGION_SPLIT, "buffer_km": 0.0}, seed=seed),
            "region, 905 km buffer": region}


def run(df: pd.DataFrame, emb, seed: int, workdir: Path, name: str) -> dict:
    from pigeon.cells import GeoCells
    from pigeon.data import distance_to_rows_km
    from pigeon.evaluate import compute_metrics
    from pigeon.model import TrainConfig, predict_manifest, train

    train_df, test_df = df[df["split"] == "train"], df[df["split"] == "test"]
    cells = GeoCells.build(train_df["lat"], train_df["lon"], method="semantic", min_size=8, max_size=25, seed=0)
    out = workdir / "spatial" / f"{name.replace(' ', '_').replace(',', '')}_seed{seed}"
    geo = train(df, cells, emb, out, TrainConfig(epochs=40, seed=seed), overwrite=True)
    metrics = compute_metrics(predict_manifest(geo, test_df, emb, top_k=1), test_df)
    gap, _ = distance_to_rows_km(test_df, train_df, views=False)
    return {**metrics, "n_train": len(train_df), "test_to_train_km": float(np.median(gap))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-ablation"))
    args = parser.parse_args(argv)
    from pigeon.demo import demo_dataset, demo_embeddings

    df = demo_dataset(args.workdir / "data", n=args.n, views=4, seed=0)
    emb = demo_embeddings(df, args.workdir / "emb")
    runs: dict[str, list[dict]] = {}
    for seed in args.seeds:  # the seed draws the regions, the subsample and the training
        for name, split_df in splits(df, seed).items():
            runs.setdefault(name, []).append(run(split_df, emb, seed, args.workdir, name))
    (args.workdir / "spatial_split.json").write_text(json.dumps(runs, indent=2, default=float))
    print(f"Blue Marble, {args.n} locations x 4 views, EfficientNet-Lite0 embeddings, demo recipe; "
          f"mean ± std over seeds {args.seeds}\n")
    print("| split | train / test rows | " + " | ".join(SHOWN) + " | test to train km (median) |")
    print("|---|---|" + "---|" * (len(SHOWN) + 1))
    for name, rs in runs.items():
        rows = f"{np.mean([r['n_train'] for r in rs]):.0f} / {np.mean([r['n'] for r in rs]):.0f}"
        print(f"| {name} | {rows} | " + " | ".join(_mean_std([r[k] for r in rs], k) for k in SHOWN)
              + f" | {np.mean([r['test_to_train_km'] for r in rs]):.0f} |")


def _mean_std(values: list, key: str) -> str:
    values = [v for v in values if v is not None]
    scale, fmt = (100, ".1f") if key.startswith("acc") or key == "country_acc" else (1, ".0f")
    return f"{scale * np.mean(values):{fmt}} ± {scale * np.std(values):{fmt}}"


if __name__ == "__main__":
    main()
