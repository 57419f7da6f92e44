"""Start-up time of the CLI: ``pigeon --help`` and ``pigeon predict demo IMG``, measured with ``/usr/bin/time``.

Each command runs in a fresh process, ``--repeats`` times, interleaved with the floors it cannot beat (an empty
interpreter, ``import torch``) and, with ``--before SRC``, with the same commands run from another source tree (e.g.
the main branch's ``src/``), so that a busy machine slows every variant alike. Reported: median wall seconds, median
CPU seconds (user + sys: less sensitive to other jobs than wall), and peak RSS.

    python benchmarks/startup.py --repeats 7 --before /work/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"
TIME = "/usr/bin/time"


def run_timed(argv: list[str], src: Path) -> tuple[float, float, float]:
    """``(wall s, user+sys s, peak RSS MB)`` of one run of ``argv`` with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "120"}
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        proc = subprocess.run([TIME, "-f", "%e %U %S %M", "-o", out.name, *argv], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.strip().splitlines()[-1:]}")
        wall, user, system, rss_kb = out.read().split()[-4:]
    return float(wall), float(user) + float(system), int(rss_kb) / 1024


def commands(image: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass (floor)": [py, "-c", "pass"],
        "python -c 'import torch' (floor of a prediction)": [py, "-c", "import torch"],
        "pigeon --help": [py, "-m", "pigeon", "--help"],
        "pigeon predict demo IMG": [py, "-m", "pigeon", "predict", "demo", str(image)],
    }


def measure(repeats: int, before: Path | None) -> list[dict]:
    image = Path(tempfile.mkdtemp()) / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(image, quality=90)
    trees = {"this tree": SRC, **({"before": before} if before else {})}
    variants = [(name, tree, label, argv) for label, argv in commands(image).items()
                for name, tree in trees.items() if name == "this tree" or label.startswith("pigeon")]
    samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {(n, l): [] for n, _, l, _ in variants}
    for name, tree, label, argv in variants:  # one warm-up run each (page cache, .pyc files)
        run_timed(argv, tree)
    for _ in range(repeats):
        for name, tree, label, argv in variants:
            samples[(name, label)].append(run_timed(argv, tree))
    return [{"tree": name, "command": label, "wall_s": statistics.median(s[0] for s in samples[(name, label)]),
             "cpu_s": statistics.median(s[1] for s in samples[(name, label)]),
             "peak_rss_mb": max(s[2] for s in samples[(name, label)]), "repeats": repeats}
            for name, _, label, _ in variants]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, help="another src/ tree to run side by side")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/out/startup.json"))
    args = parser.parse_args()
    load = os.getloadavg()
    rows = measure(args.repeats, args.before)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (start {load[0]:.1f}), {os.cpu_count()} CPUs\n")
    print("| command | tree | wall s (median) | CPU s (median) | peak RSS MB |\n|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['command']} | {r['tree']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"load_average": [load[0], os.getloadavg()[0]], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
