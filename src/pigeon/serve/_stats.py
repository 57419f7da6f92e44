"""What ``GET /v1/stats`` reports: counts, errors by kind, latency percentiles, batches, guesses by country.

Only aggregates are kept (counters and the last 1,000 latencies): no request, image or location. Guesses by
country are counted per client (API key, or address without keys) and each client sees only its own: where other
people's photos were taken is theirs.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque

import numpy as np

from pigeon.serve._schemas import Percentiles, StatsResponse


class ServiceStats:
    def __init__(self, window: int = 1000, max_clients: int = 10_000) -> None:
        self.started = time.monotonic()
        self.requests = 0
        self.served = 0
        self.errors: Counter[str] = Counter()
        self.countries: OrderedDict[str | None, Counter[str]] = OrderedDict()  # per client, least recent first
        self.max_clients = max_clients
        self.latencies_ms: deque[float] = deque(maxlen=window)

    def received(self) -> None:
        self.requests += 1

    def answered(self, latency_ms: float, country: str | None, client: str | None = None) -> None:
        self.served += 1
        self.latencies_ms.append(latency_ms)
        counts = self.countries.pop(client, None) or Counter()
        counts[country or "unknown"] += 1
        self.countries[client] = counts
        if len(self.countries) > self.max_clients:
            self.countries.popitem(last=False)

    def failed(self, kind: str) -> None:
        self.errors[kind] += 1

    def snapshot(self, queue_depth: int, in_flight: int, batch_images: Counter[int],
                 client: str | None = None) -> StatsResponse:
        """The statistics as ``client`` may see them (its own guesses by country)."""
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        pct = (np.percentile(lat, [50, 90, 99]).round(2).tolist() if len(lat) else [None] * 3)
        return StatsResponse(
            uptime_s=round(time.monotonic() - self.started, 1), requests=self.requests, served=self.served,
            errors=dict(self.errors), latency_ms=Percentiles(p50=pct[0], p90=pct[1], p99=pct[2]),
            queue_depth=queue_depth, in_flight=in_flight, batches=sum(batch_images.values()),
            batch_images={str(k): v for k, v in sorted(batch_images.items())},
            guesses_by_country=dict(self.countries.get(client, Counter()).most_common()),
        )
