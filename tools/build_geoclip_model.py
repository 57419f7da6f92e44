"""Build the bundled ``geoclip`` model folder (``Geolocator.from_pretrained("geoclip")``) from the geoclip wheel.

Usage::

    pip install "pigeon-geo[peers]"          # geoclip==1.3.0
    python tools/build_geoclip_model.py [--tolerance 0.05]

Writes ``src/pigeon/resources/geoclip_model/``: ``config.json``, ``cells/`` (semantic cells of the photo preset
built over GeoCLIP's 100K gallery points, outlines simplified to ``--tolerance`` degrees; they only draw the
probability map and aggregate the gallery posterior), ``geoclip/`` (the names and sha256 of the wheel's weight and
gallery files, and the cell of each gallery point) and the model card. No weight is copied: they are read from the
installed wheel when the model loads. Takes about 5 minutes on 2 CPU cores (the cells).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import shapely

DEST = Path(__file__).resolve().parents[1] / "src" / "pigeon" / "resources" / "geoclip_model"


def main(argv: list[str] | None = None) -> None:
    from pigeon._io import atomic_path, provenance, write_json
    from pigeon.cells import GeoCells
    from pigeon.model.geoclip import _published

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=0.05, help="outline simplification, degrees")
    parser.add_argument("--out", type=Path, default=DEST)
    args = parser.parse_args(argv)

    coords = _published.published_gallery()
    cells = GeoCells.build(coords[:, 0], coords[:, 1], method="semantic", preset="photo", seed=0)
    shutil.rmtree(args.out, ignore_errors=True)
    table = cells.table.copy()
    table["geometry"] = shapely.make_valid(shapely.simplify(table.geometry.to_numpy(), args.tolerance))
    GeoCells(table, {**cells.meta, "outline_tolerance_deg": args.tolerance}).save(args.out / "cells")
    _published.write_reference(args.out / "geoclip", cells.train_labels)
    config = _published.published_model_config(len(cells), cells.meta.get("config", {}))
    config["stages"] = ["head", "geoclip"]
    write_json(args.out / "config.json", config)
    write_json(args.out / "meta.json", provenance("model", config))
    from pigeon.model import Geolocator
    from pigeon.model._card import model_card

    geo = Geolocator.from_pretrained(args.out)  # loads back
    with atomic_path(args.out / "README.md") as tmp:
        tmp.write_text(model_card(geo))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"geoclip model ({len(cells)} cells over {len(coords):,} gallery points, {size / 1e6:.1f} MB) -> {args.out}")


if __name__ == "__main__":
    main()
