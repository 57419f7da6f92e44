"""What the web page draws: country boundaries and cell polygons as compact GeoJSON, and the page's assets.

The page needs no tile server and no CDN: it draws the bundled Natural Earth boundaries (the same ones
:func:`pigeon.geography.countries` reads) as vectors with the vendored Leaflet under ``static/vendor``.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

STATIC_DIR = Path(str(resources.files("pigeon.serve") / "static"))

#: Headers of every answer: no MIME sniffing, no referrer, never framed.
BASE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; script-src 'self'{}; "
        "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'none'")
#: Security headers of the page and its assets: only this origin's scripts, styles, images and API.
PAGE_HEADERS = {"Content-Security-Policy": _CSP.format(""), **BASE_HEADERS}
#: The API documentation pages, whose HTML holds inline scripts: the same policy, plus those scripts' hashes.
DOC_PAGES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def security_headers(path: str, body: bytes | None = None) -> dict[str, str]:
    """The security headers of an answer to ``path`` (``body``: a documentation page's HTML, for its hashes)."""
    if path == "/" or path.startswith("/static/"):
        return PAGE_HEADERS
    if path in DOC_PAGES:
        hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'"
                         for m in _INLINE_SCRIPT.findall(body or b""))
        return {"Content-Security-Policy": _CSP.format(hashes), **BASE_HEADERS}
    if path.startswith("/v1/"):
        return {"Cache-Control": "no-store", **BASE_HEADERS}
    return BASE_HEADERS


class SecurityHeaders:
    """ASGI middleware adding :func:`security_headers` to every answer (documentation pages are buffered, to hash
    their inline scripts into the Content-Security-Policy)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, held, body = scope["path"], [], []

        async def add_headers(message) -> None:
            if message["type"] == "http.response.start" and path not in DOC_PAGES:
                await send(_with_headers(message, security_headers(path)))
            elif message["type"] == "http.response.start":
                held.append(message)
            elif held and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    page = b"".join(body)
                    await send(_with_headers(held.pop(), security_headers(path, page)))
                    await send({"type": "http.response.body", "body": page})
            else:
                await send(message)

        await self.app(scope, receive, add_headers)


def _with_headers(start: dict, headers: dict[str, str]) -> dict:
    names = {k.lower().encode() for k in headers}
    kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in names]
    return {**start, "headers": kept + [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


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
