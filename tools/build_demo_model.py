"""Build the demo model that ships in the package (``Geolocator.from_pretrained("demo")``).

Usage::

    python tools/build_demo_model.py [--workdir /tmp/pigeon-demo-build]

Runs ``pigeon demo`` with its default arguments and copies the model folder (with its refiner, its calibration
``calibration.json`` (the temperature and unseen-ground reference fitted on the demo's validation split) and model
card) into ``src/pigeon/resources/demo_model/`` without the training checkpoint, with cell outlines simplified to
``--tolerance`` degrees (the cells' centroids, names and training counts are unchanged; outlines only draw the
probability map) and with the demo's test-split metrics as ``report_metrics.json``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import shapely

DEST = Path(__file__).resolve().parents[1] / "src" / "pigeon" / "resources" / "demo_model"
KEEP = ("config.json", "head.safetensors", "standardiser.json", "meta.json", "metrics.json", "README.md")
OPTIONAL = ("calibration.json",)


def main(argv: list[str] | None = None) -> None:
    from pigeon.cells import GeoCells
    from pigeon.demo import run_demo
    from pigeon.model import Geolocator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-demo-build"))
    parser.add_argument("--tolerance", type=float, default=0.05, help="outline simplification, degrees")
    args = parser.parse_args(argv)

    run_demo(args.workdir)
    model = args.workdir / "model"
    shutil.rmtree(DEST, ignore_errors=True)
    DEST.mkdir(parents=True)
    for name in KEEP + tuple(n for n in OPTIONAL if (model / n).is_file()):
        shutil.copy2(model / name, DEST / name)
    shutil.copytree(model / "refiner", DEST / "refiner")
    shutil.copy2(args.workdir / "report" / "metrics.json", DEST / "report_metrics.json")
    cells = GeoCells.load(model / "cells")
    table = cells.table.copy()
    table["geometry"] = shapely.make_valid(shapely.simplify(table.geometry.to_numpy(), args.tolerance))
    GeoCells(table, {**cells.meta, "outline_tolerance_deg": args.tolerance}).save(DEST / "cells")
    Geolocator.from_pretrained(DEST)  # loads back
    size = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"demo model ({len(cells)} cells, {size / 1e6:.1f} MB) -> {DEST}")


if __name__ == "__main__":
    main()
