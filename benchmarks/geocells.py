"""Geocell build time, peak memory and the "oracle" error of naive vs semantic cells on real photo locations.

Points: the 100K MP-16 (Flickr) GPS gallery that ships in the ``geoclip`` wheel (MIT), resampled with replacement
and jittered by up to 5 km for larger sizes. The wheel is 40 MB and not a dependency; fetch it once::

    pip download --no-deps geoclip==1.3.0 -d /tmp/geoclip
    python benchmarks/geocells.py --wheel /tmp/geoclip/geoclip-1.3.0-py3-none-any.whl [--sizes 100000 1000000]

Each build runs in its own process so its peak RSS is its own. 10 % of the points are held out; the oracle
classifies each held-out point into its true cell (``GeoCells.assign``) and guesses that cell's centroid: the
error floor of a perfect classifier. Naive cells are built with a ``max_size`` fitted to give about as many
cells as the semantic build. Results print as a Markdown table (for ``benchmarks/README.md``) and JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

GALLERY = "geoclip/model/gps_gallery/coordinates_100K.csv"
HOW_TO_GET = ("pip download --no-deps geoclip==1.3.0 -d /tmp/geoclip && python benchmarks/geocells.py "
              "--wheel /tmp/geoclip/geoclip-1.3.0-py3-none-any.whl")


def load_gallery(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of the 100K gallery, read from inside the geoclip wheel."""
    import pandas as pd

    if not wheel.is_file():
        sys.exit(f"error: {wheel} not found; get it with: {HOW_TO_GET}")
    with zipfile.ZipFile(wheel) as zf, zf.open(GALLERY) as fh:
        df = pd.read_csv(fh)
    return df["LAT"].to_numpy(np.float64), df["LON"].to_numpy(np.float64)


def resample(lat: np.ndarray, lon: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points: the gallery itself for n <= its size, else drawn with replacement and jittered by 0-5 km."""
    from pigeon.geo import destination_point

    rng = np.random.default_rng(seed)
    if n <= len(lat):
        idx = rng.permutation(len(lat))[:n]
        return lat[idx], lon[idx]
    idx = rng.integers(0, len(lat), n)
    return destination_point(lat[idx], lon[idx], rng.uniform(0, 360, n), rng.uniform(0, 5, n))


def oracle(cells, lat: np.ndarray, lon: np.ndarray) -> dict:
    """Error of guessing the centroid of each point's true cell: % within the paper's radii and the median km."""
    from pigeon.geo import RADII_KM, haversine_km

    cent = cells.centroids[cells.assign(lat, lon)]
    d = haversine_km(lat, lon, cent[:, 0], cent[:, 1])
    return {**{f"{r}km": float(100 * (d <= r).mean()) for r in RADII_KM}, "median_km": float(np.median(d))}


def run_one(args: argparse.Namespace) -> None:
    """Child process: build one set of cells, print JSON with time, peak memory, size stats and the oracle."""
    from pigeon.cells import GeoCells, cell_stats

    lat, lon = resample(*load_gallery(args.wheel), args.n)
    hold = np.random.default_rng(1).random(len(lat)) < 0.1
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    cells = GeoCells.build(lat[~hold], lon[~hold], method=args.method, min_size=args.min_size,
                           max_size=args.max_size, preset=args.preset, seed=0)
    seconds = time.perf_counter() - start
    stats = cell_stats(cells)
    print(json.dumps({
        "n": args.n, "method": args.method, "min_size": args.min_size, "max_size": args.max_size,
        "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_build_mb": rss0 / 1024, "n_cells": len(cells),
        "below_min": stats["below_min_size"], "above_max": stats["above_max_size"],
        "multipart": stats["multipart_cells"], "median_size": stats["size"]["median"],
        "oracle": oracle(cells, lat[hold], lon[hold]),
    }))


def child(wheel: Path, n: int, method: str, min_size: int, max_size: int, preset: str) -> dict:
    cmd = [sys.executable, __file__, "--wheel", str(wheel), "--one", "--n", str(n), "--method", method,
           "--min-size", str(min_size), "--max-size", str(max_size), "--preset", preset]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=Path("/tmp/geoclip/geoclip-1.3.0-py3-none-any.whl"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--preset", default="streetview")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--min-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args)
    load_gallery(args.wheel)  # fail early with the how-to
    from pigeon.cells import PRESETS

    preset = PRESETS[args.preset]
    rows = []
    for n in args.sizes:
        sem = child(args.wheel, n, "semantic", preset.min_size, preset.max_size, args.preset)
        rows.append(sem)
        # naive: fit max_size so the cell count is close to the semantic one (count ~ 1 / max_size)
        max_size, best = 2 * preset.max_size, None
        for _ in range(3):
            nv = child(args.wheel, n, "naive", 1, max_size, args.preset)
            if best is None or abs(nv["n_cells"] - sem["n_cells"]) < abs(best["n_cells"] - sem["n_cells"]):
                best = nv
            if abs(nv["n_cells"] - sem["n_cells"]) <= 0.05 * sem["n_cells"]:
                break
            max_size = max(2, round(max_size * nv["n_cells"] / sem["n_cells"]))
        rows.append(best)
    print("| points | method | min/max | cells | build s | peak RSS MB | <min / >max / multipart "
          "| 1 km | 25 km | 200 km | 750 km | 2500 km | median km |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o = r["oracle"]
        print(f"| {r['n']:,} | {r['method']} | {r['min_size']}/{r['max_size']} | {r['n_cells']:,} | {r['seconds']:.0f} "
              f"| {r['peak_rss_mb']:.0f} | {r['below_min']} / {r['above_max']} / {r['multipart']} | "
              + " | ".join(f"{o[k]:.1f}" for k in ("1km", "25km", "200km", "750km", "2500km"))
              + f" | {o['median_km']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
