"""Speed of the foundation stages on synthetic data: ingest (EXIF + decode check) and evaluate.

Run: python benchmarks/foundation_speed.py [--photos 200] [--predictions 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from PIL import ExifTags, Image

matplotlib.use("Agg")


def make_photos(root: Path, n: int, size=(1600, 1200)) -> None:
    """``n`` noisy JPEGs (~12 % without GPS) of ``size`` pixels with EXIF GPS."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    for i in range(n):
        exif = Image.Exif()
        if i % 8:
            lat, lon = rng.uniform(-60, 70), rng.uniform(-180, 180)
            exif[ExifTags.IFD.GPSInfo] = {1: "N" if lat >= 0 else "S", 2: (abs(lat), 0.0, 0.0),
                                          3: "E" if lon >= 0 else "W", 4: (abs(lon), 0.0, 0.0)}
        Image.fromarray(np.roll(base, i, axis=1)).save(root / f"{i:05d}.jpg", exif=exif, quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--predictions", type=int, default=10_000)
    args = parser.parse_args()

    from pigeon.data import ingest_photos
    from pigeon.evaluate import compute_metrics, write_report
    from pigeon.geography import countries

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "photos").mkdir()
        make_photos(tmp / "photos", args.photos)
        t = time.perf_counter()
        result = ingest_photos(tmp / "photos", tmp / "m.parquet", split=(0.8, 0.1, 0.1))
        dt = time.perf_counter() - t
        print(f"ingest: {args.photos} JPEGs of 1600x1200 in {dt:.2f} s = {args.photos / dt:.0f} photos/s "
              f"({len(result.located)} located, {len(result.unlocated)} unlocated)")

        rng = np.random.default_rng(1)
        n = args.predictions
        truth = pd.DataFrame({"id": np.arange(n).astype(str), "lat": rng.uniform(-60, 70, n),
                              "lon": rng.uniform(-180, 180, n)})
        pred = truth.assign(lat=np.clip(truth["lat"] + rng.normal(0, 5, n), -90, 90),
                            lon=(truth["lon"] + rng.normal(0, 5, n) + 180) % 360 - 180)
        countries()  # load the boundaries once (cached), so the timings below are the steady state
        t = time.perf_counter()
        metrics = compute_metrics(pred, truth)
        t_metrics = time.perf_counter() - t
        t = time.perf_counter()
        write_report(pred, truth, tmp / "report")
        t_report = time.perf_counter() - t
        print(f"evaluate: compute_metrics on {n:,} predictions in {t_metrics:.2f} s; "
              f"write_report (metrics + 2 figures) in {t_report:.2f} s; median {metrics['median_km']:.0f} km")


if __name__ == "__main__":
    main()
