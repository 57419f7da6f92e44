"""What the web page draws: country boundaries and cell polygons as compact GeoJSON, and the page's assets.

The page needs no tile server and no CDN: it draws the bundled Natural Earth boundaries (the same ones
:func:`pigeon.geography.countries` reads) as vectors with the vendored Leaflet under ``static/vendor``.
"""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

STATIC_DIR = Path(str(resources.files("pigeon.serve") / "static"))

#: Security headers of the page and its assets: only this origin's scripts, styles, images and API.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class GeoJSONBody:
    """A GeoJSON document ready to send, plain and gzip-compressed."""

    raw: bytes
    gz: bytes

    @classmethod
    def of(cls, collection: dict) -> GeoJSONBody:
        raw = json.dumps(collection, separators=(",", ":")).encode()
        return cls(raw, gzip.compress(raw, 6))


def simplified_features(geometries, properties: list[dict], tolerance_deg: float = 0.05) -> dict:
    """A FeatureCollection of ``geometries`` simplified to ``tolerance_deg`` and rounded to 0.01 degree."""
    import shapely
    from shapely.geometry import mapping

    geoms = shapely.simplify(np.asarray(geometries, dtype=object), tolerance_deg, preserve_topology=True)
    geoms = shapely.make_valid(shapely.transform(geoms, lambda xy: np.round(xy, 2)))
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None if g is None or g.is_empty else mapping(g), "properties": p}
        for g, p in zip(geoms, properties)]}


@functools.lru_cache(maxsize=1)
def country_boundaries() -> GeoJSONBody:
    """Every country outline with its ISO code and name (a few seconds, once per process, at start-up)."""
    from pigeon.geography import countries

    table = countries()
    props = [{"iso_a2": a, "name": n} for a, n in zip(table["iso_a2"], table["name"])]
    return GeoJSONBody.of(simplified_features(table.geometry.to_numpy(), props))


def cell_polygons(geometries, countries: list[str | None], regions: list[str | None]) -> GeoJSONBody:
    """Every geocell's outline with its index, country and region (served only without a precision cap)."""
    props = [{"cell": i, "country": c, "region": r} for i, (c, r) in enumerate(zip(countries, regions))]
    return GeoJSONBody.of(simplified_features(geometries, props))
