"""Micro-batching: concurrent requests wait a few milliseconds to share one model call.

One asyncio task collects queued requests into a batch (up to ``max_batch`` images, waiting at most
``max_wait_s`` after the first one arrives, without waiting at all when the queue already holds more) and runs
the batch in a single model thread, so the event loop never blocks on the model. A request that gave up
(its time limit passed) before its batch started is left out of the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pigeon.serve._inference import Query

_POLL_S = 0.001


@dataclass
class Served:
    """A model answer with how long it waited and ran."""

    prediction: Any
    queue_ms: float
    model_ms: float
    batch_images: int


@dataclass
class _Job:
    query: Query
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)

    @property
    def n_images(self) -> int:
        return len(self.query.views)


class MicroBatcher:
    """Group concurrent queries into batches for ``predict(queries) -> predictions`` (run in one thread).

    Args:
        predict: the batched model call, e.g. ``functools.partial(predict_queries, geo)``.
        max_batch: images per call (a single query larger than this still runs, alone).
        max_wait_s: how long the first query of a batch waits for more.
    """

    def __init__(self, predict: Callable[[Sequence[Query]], list], max_batch: int = 32,
                 max_wait_s: float = 0.005) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batch_images: Counter[int] = Counter()
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._carry: _Job | None = None

    # --------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pigeon-model")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pigeon-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._task = self._pool = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def depth(self) -> int:
        """Queries waiting for a batch."""
        return (self._queue.qsize() if self._queue is not None else 0) + (self._carry is not None)

    async def run_in_model_thread(self, fn: Callable, *args) -> Any:
        """Run ``fn`` on the model's thread (e.g. a warm-up call), in turn with the batches."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ submit
    async def submit(self, query: Query) -> Served:
        """Queue a query and wait for its answer (cancelling the wait drops it if its batch has not started)."""
        if not self.alive:
            raise RuntimeError("the batcher is not running")
        job = _Job(query, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    # ------------------------------------------------------------------- batch
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(loop)
            batch = [j for j in batch if not j.future.done()]  # their requests gave up waiting
            if not batch:
                continue
            n_images = sum(j.n_images for j in batch)
            start = time.perf_counter()
            try:
                preds = await loop.run_in_executor(self._pool, self.predict, [j.query for j in batch])
            except Exception as exc:  # noqa: BLE001  a model failure fails its batch, not the service
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            end = time.perf_counter()
            self.batch_images[n_images] += 1
            for job, pred in zip(batch, preds):
                if not job.future.done():
                    job.future.set_result(Served(pred, (start - job.queued_at) * 1e3, (end - start) * 1e3,
                                                 n_images))

    async def _collect(self, loop) -> list[_Job]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, n = [first], first.n_images
        deadline = loop.time() + self.max_wait_s
        while n < self.max_batch:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, _POLL_S))  # polling, not wait_for(get()): no lost item
                continue
            job = self._queue.get_nowait()
            if n + job.n_images > self.max_batch:
                self._carry = job  # first of the next batch
                break
            batch.append(job)
            n += job.n_images
        return batch
