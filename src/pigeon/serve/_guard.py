"""Guards against misuse: API keys, per-key rate limits, and the precision cap on every returned location."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

import numpy as np

from pigeon.geo import EARTH_RADIUS_KM
from pigeon.serve._errors import RequestError

KM_PER_DEG = EARTH_RADIUS_KM * math.pi / 180.0  # along a meridian, on the sphere of pigeon.geo

# ------------------------------------------------------------------------ keys


class KeyCheck:
    """Checks ``X-API-Key`` (or ``Authorization: Bearer KEY``) against the server's keys in constant time."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def client_id(self, headers, client_host: str | None) -> str:
        """Who is asking: a short hash of the key when keys are required, else the client address.

        Raises:
            RequestError: 401 when a key is required and missing or unknown.
        """
        if not self.required:
            return f"addr:{client_host or 'unknown'}"
        key = headers.get("x-api-key")
        if key is None:
            scheme, _, value = headers.get("authorization", "").partition(" ")
            key = value.strip() if scheme.lower() == "bearer" else None
        if not key:
            raise RequestError(401, "unauthorized", "this server needs an API key: send it in the X-API-Key "
                               "header (ask the server's operator for one)")
        digest = hashlib.sha256(key.encode()).digest()
        if not any(hmac.compare_digest(digest, d) for d in self._digests):  # noqa: SIM110  no short-circuit timing
            raise RequestError(401, "unauthorized", "the API key is not valid; check it with the server's operator")
        return f"key:{digest.hex()[:12]}"


# ------------------------------------------------------------------ rate limits


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute, in bursts of up to ``per_minute``."""

    def __init__(self, per_minute: float | None, max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, time)

    def check(self, client: str, now: float | None = None) -> None:
        """Take one token for ``client``; raise 429 with ``Retry-After`` when there is none."""
        if self.per_minute is None:
            return
        now = time.monotonic() if now is None else now
        capacity, rate = max(self.per_minute, 1.0), self.per_minute / 60.0
        tokens, last = self._buckets.get(client, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / rate)
            raise RequestError(429, "rate_limited", f"over this server's limit of {self.per_minute:g} requests a "
                               f"minute; retry in {wait} s", retry_after=wait)
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_clients:
            self._forget_idle(now, capacity, rate)

    def _forget_idle(self, now: float, capacity: float, rate: float) -> None:
        """Drop buckets that have refilled: they hold no state worth keeping (bounds memory)."""
        for client, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * rate >= capacity:
                del self._buckets[client]


# --------------------------------------------------------------- precision cap


class PrecisionCap:
    """Snap locations to a grid whose boxes are at least ``km`` wide in both directions.

    Rows of latitude are ``km`` tall (the 180 degrees divided into whole rows); each row is split into as many
    longitude boxes as fit with every box at least ``km`` wide at the row's edge nearest a pole. A location
    becomes the centre of its box, so nothing returned is finer than ``km``.
    """

    def __init__(self, km: float) -> None:
        self.km = float(km)
        self.n_rows = max(1, math.floor(180.0 * KM_PER_DEG / self.km))
        self.row_deg = 180.0 / self.n_rows
        edges = -90.0 + self.row_deg * np.arange(self.n_rows + 1)
        poleward = np.maximum(np.abs(edges[:-1]), np.abs(edges[1:]))
        width_km = 360.0 * KM_PER_DEG * np.cos(np.radians(poleward))
        self.n_cols = np.maximum(1, np.floor(width_km / self.km)).astype(int)

    def box(self, lat: float, lon: float) -> tuple[int, int]:
        """(row, column) of the box holding (lat, lon)."""
        row = min(int((lat + 90.0) // self.row_deg), self.n_rows - 1)
        n = int(self.n_cols[row])
        return row, int(((lon + 180.0) % 360.0) // (360.0 / n)) % n

    def centre(self, row: int, col: int) -> tuple[float, float]:
        n = int(self.n_cols[row])
        return -90.0 + (row + 0.5) * self.row_deg, -180.0 + (col + 0.5) * 360.0 / n

    def snap(self, lat: float, lon: float) -> tuple[float, float]:
        """The centre of the box holding (lat, lon)."""
        return self.centre(*self.box(lat, lon))
