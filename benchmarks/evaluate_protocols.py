"""One prediction file scored under every evaluation protocol: how much each peer's definitions move the figures.

    python benchmarks/evaluate_protocols.py [--predictions P.csv --truth T.csv] [--wheel geoclip-1.3.0-...whl]

With ``--predictions``/``--truth`` it scores that file (e.g. a peer's published per-image predictions, with
``--columns``-style names already pigeon's: ``id, lat, lon``). Without them (no published per-image prediction file is
available offline) it makes one: the truth is 10,000 real photo locations (10 % of the MP-16 gallery inside the
``geoclip`` wheel, drawn as in ``geocells.py``), and each guess lies at a random bearing from its truth, at a distance
drawn so that the accuracy profile is PIGEOTTO's published IM2GPS3k one (11.3 / 36.7 / 53.8 / 72.4 / 85.3 % within
1 / 25 / 200 / 750 / 2,500 km; log-linear between those points, up to 20,000 km). Prints Markdown: the metrics under
each protocol, then the difference from the ``pigeon`` protocol in images at each threshold.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from geocells import load_gallery, split_points  # noqa: E402  (the same held-out gallery points)

#: PIGEOTTO on IM2GPS3k (PIGEON paper): share within each radius.
PUBLISHED_CDF = ((0.01, 0.0), (1, 0.113), (25, 0.367), (200, 0.538), (750, 0.724), (2500, 0.853), (20_000, 1.0))


def published_like(truth: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Guesses whose errors follow :data:`PUBLISHED_CDF`, each at a random bearing from its truth."""
    from pigeon.geo import destination_point

    rng = np.random.default_rng(seed)
    km, share = np.array(PUBLISHED_CDF).T
    d = np.exp(np.interp(rng.uniform(0, 1, len(truth)), share, np.log(km)))
    lat, lon = destination_point(truth["lat"], truth["lon"], rng.uniform(0, 360, len(truth)), d)
    return pd.DataFrame({"id": truth["id"], "lat": lat, "lon": lon})


def score(pred: pd.DataFrame, truth: pd.DataFrame) -> dict[str, dict]:
    """Metrics of ``pred`` under every registered protocol, with the seconds each took."""
    from pigeon.evaluate import PROTOCOLS, compute_metrics

    out = {}
    for name in PROTOCOLS:
        start = time.perf_counter()
        out[name] = compute_metrics(pred, truth, protocol=name)
        out[name]["seconds"] = time.perf_counter() - start
    return out


def tables(runs: dict[str, dict]) -> str:
    """Markdown: the metrics per protocol, then the difference from ``pigeon`` in images per threshold."""
    from pigeon.geo import RADII_KM

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| protocol | " + " | ".join(f"{r:,} km" for r in RADII_KM) + " | median km | mean km | GeoScore "
             "| country | region | sub-region | city | s |", "|---|" + "---|" * (len(RADII_KM) + 8)]
    for name, m in runs.items():
        lines.append(f"| `{name}` | " + " | ".join(pct(m[f"acc_{r}km"]) for r in RADII_KM)
                     + f" | {m['median_km']:.3f} | {m['mean_km']:.2f} | {num(m['geoscore_mean'], ',.2f')} "
                     f"| {pct(m['country_acc'])} | {pct(m.get('acc_region'))} | {pct(m.get('acc_subregion'))} "
                     f"| {pct(m.get('acc_city'))} | {m['seconds']:.2f} |")
    base, n = runs["pigeon"], runs["pigeon"]["n"]
    lines += ["", "| protocol | " + " | ".join(f"{r:,} km" for r in RADII_KM) + " | median km |",
              "|---|" + "---|" * (len(RADII_KM) + 1)]
    for name, m in runs.items():
        diff = [round((m[f"acc_{r}km"] - base[f"acc_{r}km"]) * n) for r in RADII_KM]
        lines.append(f"| `{name}` vs `pigeon` (images of {n:,}) | " + " | ".join(f"{d:+d}" for d in diff)
                     + f" | {m['median_km'] - base['median_km']:+.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=Path, help="a prediction file (id, lat, lon)")
    parser.add_argument("--truth", type=Path, help="its truth (id, lat, lon)")
    parser.add_argument("--wheel", type=Path, default=Path("/tmp/geoclip/geoclip-1.3.0-py3-none-any.whl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.predictions is not None:
        from pigeon.evaluate import read_predictions, read_truth

        pred, truth = read_predictions(args.predictions), read_truth(args.truth)
        what = f"{args.predictions} against {args.truth}"
    else:
        _, (lat, lon) = split_points(*load_gallery(args.wheel), 100_000)
        truth = pd.DataFrame({"id": [f"p{i}" for i in range(len(lat))], "lat": lat, "lon": lon})
        pred = published_like(truth, args.seed)
        what = (f"{len(truth):,} held-out MP-16 gallery locations, guesses with PIGEOTTO's IM2GPS3k accuracy profile "
                f"(seed {args.seed})")
    print(f"{what}\n")
    print(tables(score(pred, truth)))


if __name__ == "__main__":
    main()
