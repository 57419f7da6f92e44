"""The Blue Marble dataset: generation time and size, and how much location signal its pixels carry.

Usage::

    python benchmarks/bluemarble.py [--n 1000] [--views 4] [--seed 0] [--workdir /tmp/pigeon-bluemarble]

Generates the dataset (timed, in a fresh folder), then fits a pixel-statistics baseline without any network:
per view, the mean, standard deviation and 8-bin histogram of each RGB channel, averaged over the views; a
5-nearest-neighbour vote (spherical mean of the neighbours' training locations) predicts each test location.
Compared with guessing the training set's spherical mean and with guessing a random training location.
Prints Markdown.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _features(paths: list[Path]) -> np.ndarray:
    """Colour statistics of each view, averaged over the views: (3 * (2 + 8),)."""
    out = []
    for path in paths:
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).reshape(-1, 3) / 255.0
        hist = [np.histogram(pixels[:, c], bins=8, range=(0, 1))[0] / len(pixels) for c in range(3)]
        out.append(np.concatenate([pixels.mean(0), pixels.std(0), *hist]))
    return np.mean(out, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-bluemarble"))
    args = parser.parse_args()

    from sklearn.neighbors import NearestNeighbors

    from pigeon.data import image_views
    from pigeon.data.bluemarble import make_bluemarble_dataset
    from pigeon.geo import haversine_km, spherical_mean

    shutil.rmtree(args.workdir, ignore_errors=True)
    start = time.perf_counter()
    df = make_bluemarble_dataset(args.workdir, n=args.n, views=args.views, seed=args.seed)
    seconds = time.perf_counter() - start
    size_mb = sum(p.stat().st_size for p in args.workdir.rglob("*") if p.is_file()) / 1e6

    x = np.stack([_features(paths) for paths in image_views(df)])
    train, test = (df["split"] == "train").to_numpy(), (df["split"] == "test").to_numpy()
    lat, lon = df["lat"].to_numpy(), df["lon"].to_numpy()
    mu, sigma = x[train].mean(0), x[train].std(0) + 1e-9
    _, idx = NearestNeighbors(n_neighbors=5).fit((x[train] - mu) / sigma).kneighbors((x[test] - mu) / sigma)
    knn = np.array([spherical_mean(lat[train][i], lon[train][i]) for i in idx])
    mean_lat, mean_lon = spherical_mean(lat[train], lon[train])
    rng = np.random.default_rng(args.seed)
    pick = rng.integers(0, train.sum(), test.sum())
    errors = {
        "colour-statistics 5-NN": haversine_km(lat[test], lon[test], knn[:, 0], knn[:, 1]),
        "training spherical mean": haversine_km(lat[test], lon[test], mean_lat, mean_lon),
        "random training location": haversine_km(lat[test], lon[test], lat[train][pick], lon[train][pick]),
    }
    print(f"generated {args.n} locations x {args.views} views in {seconds:.1f} s ({size_mb:.1f} MB) "
          f"-> {args.workdir}\n")
    print(f"| test set ({test.sum()} locations) | median km | mean km | < 750 km | < 2500 km |")
    print("|---|---|---|---|---|")
    for name, err in errors.items():
        print(f"| {name} | {np.median(err):.0f} | {err.mean():.0f} | {(err < 750).mean():.1%} | "
              f"{(err < 2500).mean():.1%} |")


if __name__ == "__main__":
    main()
