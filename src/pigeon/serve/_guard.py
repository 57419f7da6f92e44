"""Guards against misuse: API keys, rate limits, shared budgets, and the precision cap on every returned location."""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable

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
        key = sent_key(headers)
        if not key:
            raise RequestError(401, "unauthorized", "this server needs an API key: send it in the X-API-Key "
                               "header (ask the server's operator for one)")
        digest = hashlib.sha256(key.encode()).digest()
        if not any(hmac.compare_digest(digest, d) for d in self._digests):  # noqa: SIM110  no short-circuit timing
            raise RequestError(401, "unauthorized", "the API key is not valid; check it with the server's operator")
        return f"key:{digest.hex()[:12]}"


def sent_key(headers) -> str | None:
    """The key a request carries: ``X-API-Key``, or else ``Authorization: Bearer KEY`` (an empty header is none)."""
    key = (headers.get("x-api-key") or "").strip()
    if key:
        return key
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


# ------------------------------------------------------------------ rate limits


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute, in bursts of up to ``per_minute``."""

    def __init__(self, per_minute: float | None, max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, time)

    def check(self, client: str, now: float | None = None) -> None:
        """Take one token for ``client``; raise 429 with ``Retry-After`` when there is none."""
        wait = self.take(client, now)
        if wait:
            raise RequestError(429, "rate_limited", f"over this server's limit of {self.per_minute:g} requests a "
                               f"minute; retry in {wait} s", retry_after=wait)

    def take(self, client: str, now: float | None = None) -> int:
        """Take one token for ``client``: 0 when there was one, else the seconds until there is."""
        if self.per_minute is None:
            return 0
        now = time.monotonic() if now is None else now
        tokens = self._tokens(client, now)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return self.wait(tokens)
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_clients:
            self._forget_idle(now)
        return 0

    def blocked(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` has a token again (0: it has one); takes nothing."""
        if self.per_minute is None:
            return 0
        tokens = self._tokens(client, time.monotonic() if now is None else now)
        return self.wait(tokens) if tokens < 1.0 else 0

    def wait(self, tokens: float) -> int:
        return math.ceil((1.0 - tokens) / (self.per_minute / 60.0))

    def _tokens(self, client: str, now: float) -> float:
        capacity, rate = max(self.per_minute, 1.0), self.per_minute / 60.0
        tokens, last = self._buckets.get(client, (capacity, now))
        return min(capacity, tokens + (now - last) * rate)

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled: they hold no state worth keeping (bounds memory)."""
        capacity = max(self.per_minute, 1.0)
        for client in list(self._buckets):
            if self._tokens(client, now) >= capacity:
                del self._buckets[client]


# ---------------------------------------------------------------------- budgets


class Budget:
    """An amount that requests in flight share (pixels being decoded, body bytes held): take, then give back.

    Thread-safe (decode threads give back what they took when they finish). Past the limit a request gets 503 with
    ``Retry-After``; one that alone needs more than the whole budget gets 413.

    Args:
        limit: the amount.
        what: what is counted, for messages (e.g. ``"pixels decoded at once"``).
        too_large: the error kind of the 413.
        retry_after: seconds a refused client should wait.
    """

    def __init__(self, limit: int, what: str, too_large: str, retry_after: Callable[[], int]) -> None:
        self.limit, self.what, self.too_large, self.retry_after = limit, what, too_large, retry_after
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int, held: int = 0) -> None:
        """Take ``n`` more for a request that already holds ``held``."""
        if held + n > self.limit:
            raise RequestError(413, self.too_large, f"this request needs {held + n:,} {self.what}, over this "
                               f"server's limit of {self.limit:,}; send fewer or smaller images")
        with self._lock:
            if self.used + n > self.limit:
                raise RequestError(503, "busy", f"the server is at its limit of {self.limit:,} {self.what}; retry "
                                   "after the time in Retry-After", retry_after=self.retry_after())
            self.used += n

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n


class Hold:
    """What one request holds of a :class:`Budget`; a context manager that gives it all back on exit."""

    def __init__(self, budget: Budget) -> None:
        self.budget, self.n = budget, 0

    def take(self, n: int) -> None:
        self.budget.take(n, self.n)
        self.n += n

    def release(self) -> None:
        self.budget.give(self.n)
        self.n = 0

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


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
