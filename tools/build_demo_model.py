"""Build the demo model that ships in the package (``Geolocator.from_pretrained("demo")``).

Usage::

    python tools/build_demo_model.py [--workdir /tmp/pigeon-demo-build]   # build it, then its golden outputs
    python tools/build_demo_model.py --golden-only                       # only the golden outputs, of the bundled one

Runs ``pigeon demo`` with its default arguments and copies the model folder (with the placing
methods' artefacts, refiner and geoclip, without their training records; its calibration ``calibration.json`` (the temperature and unseen-ground reference fitted on the demo's validation split) and model
card) into ``src/pigeon/resources/demo_model/`` without the training checkpoint, with cell outlines simplified to
``--tolerance`` degrees (the cells' centroids, names and training counts are unchanged; outlines only draw the
probability map) and with the demo's test-split metrics as ``report_metrics.json``.

Then it writes the bundled model's **golden outputs** (``tests/model/golden_demo.json``): the head's top cells and
their probabilities (the ``cell`` method, which no placer or posterior changes) for a few fixed 4-view inputs cut
from the vendored Blue Marble image. ``tests/model/test_golden.py`` compares the bundled model against them, so a
model that is rebuilt needs its golden outputs rewritten, on purpose, in the same change.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import shapely

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "src" / "pigeon" / "resources" / "demo_model"
GOLDEN = ROOT / "tests" / "model" / "golden_demo.json"
#: The fixed inputs: 4 views (640 km, 128 px, centred 320 km ahead, as the demo's data) around these places.
GOLDEN_PLACES = {"paris": (48.86, 2.35), "sahara": (23.4, 13.0), "amazon": (-4.0, -62.0), "sydney": (-33.87, 151.2),
                 "alaska": (64.8, -147.7)}
TOP_K = 5
KEEP = ("config.json", "head.safetensors", "standardiser.json", "meta.json", "metrics.json", "README.md")
OPTIONAL = ("calibration.json",)
#: What an artefact's folder keeps of its training that a prediction never reads.
TRAINING_RECORDS = ("checkpoint", "curves.png", "train_log.jsonl")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-demo-build"))
    parser.add_argument("--tolerance", type=float, default=0.05, help="outline simplification, degrees")
    parser.add_argument("--golden-only", action="store_true",
                        help="only rewrite tests/model/golden_demo.json from the bundled model")
    args = parser.parse_args(argv)
    if not args.golden_only:
        build(args.workdir, args.tolerance)
    write_golden()


def build(workdir: Path, tolerance: float) -> None:
    """Run the demo and copy its model folder into the package."""
    from pigeon._io import read_json
    from pigeon.cells import GeoCells
    from pigeon.demo import run_demo
    from pigeon.model import Geolocator

    run_demo(workdir)
    model = workdir / "model"
    shutil.rmtree(DEST, ignore_errors=True)
    DEST.mkdir(parents=True)
    for name in KEEP + tuple(n for n in OPTIONAL if (model / n).is_file()):
        shutil.copy2(model / name, DEST / name)
    for stage in read_json(model / "config.json")["stages"]:  # the placing methods' artefacts, without their
        if (model / stage).is_dir():                             # training records
            shutil.copytree(model / stage, DEST / stage, ignore=shutil.ignore_patterns(*TRAINING_RECORDS))
    shutil.copy2(workdir / "report" / "metrics.json", DEST / "report_metrics.json")
    cells = GeoCells.load(model / "cells")
    table = cells.table.copy()
    table["geometry"] = shapely.make_valid(shapely.simplify(table.geometry.to_numpy(), tolerance))
    GeoCells(table, {**cells.meta, "outline_tolerance_deg": tolerance}).save(DEST / "cells")
    Geolocator.from_pretrained(DEST)  # loads back
    size = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"demo model ({len(cells)} cells, {size / 1e6:.1f} MB) -> {DEST}")


def golden_inputs() -> dict[str, list]:
    """Place -> its 4 views (PIL images, not re-encoded), cut from the vendored Blue Marble image."""
    from PIL import Image

    from pigeon.data._config import BlueMarbleConfig
    from pigeon.data.bluemarble import extract_patch
    from pigeon.geo import destination_point

    cfg = BlueMarbleConfig()
    views = {}
    for place, (lat, lon) in GOLDEN_PLACES.items():
        headings = [90.0 * k for k in range(cfg.views)]
        centres = [destination_point(lat, lon, h, cfg.offset_km) for h in headings]
        views[place] = [Image.fromarray(extract_patch(float(c_lat), float(c_lon), h, size_px=cfg.size_px,
                                                      patch_km=cfg.patch_km))
                        for (c_lat, c_lon), h in zip(centres, headings)]
    return views


def golden_outputs(geo) -> dict[str, dict]:
    """Place -> the head's top cells, their probabilities and the top cell's centroid (the ``cell`` method)."""
    inputs = golden_inputs()
    preds = geo.predict(list(inputs.values()), top_k=TOP_K, method="cell")
    return {place: {"cells": [c.cell for c in p.top_k], "probs": [round(c.prob, 7) for c in p.top_k],
                    "lat": round(p.lat, 6), "lon": round(p.lon, 6)}
            for place, p in zip(inputs, preds)}


def model_fingerprint() -> str:
    """SHA-256 of the bundled head's weights: says which model the golden outputs belong to."""
    return hashlib.sha256((DEST / "head.safetensors").read_bytes()).hexdigest()


def write_golden() -> None:
    from pigeon._io import write_json
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained("demo", device="cpu")
    write_json(GOLDEN, {"model": "demo", "head_sha256": model_fingerprint(), "top_k": TOP_K,
                        "places": GOLDEN_PLACES, "outputs": golden_outputs(geo)})
    print(f"golden outputs of {len(GOLDEN_PLACES)} fixed inputs -> {GOLDEN}")


if __name__ == "__main__":
    main()
