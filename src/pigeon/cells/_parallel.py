"""Per-cell work on an existing engine: this process, a process pool, or a Ray cluster.

Splitting an oversized cell needs only that cell's shape and points, so the cells of one wave are independent
tasks. :class:`CellMapper` runs them and returns the results in task order whatever order they finish in; each
task is a pure function of what it is sent, so the cells do not depend on the engine or the number of workers.

Most splits take a few milliseconds (a cell of a hundred points), about as long as sending one to a process, so
tasks travel in chunks: the costliest first, each chunk about 1/8 of a worker's share of the wave, so that the last
chunks are small and no worker waits long for the others at the end of a wave. Only a chunk's own inputs travel to
a worker (its cells' shapes and points), and at most two chunks per worker are in flight at a time.
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pigeon.errors import InputError, MissingDependencyError, PigeonError

#: Chunks in flight per worker: enough to keep a worker busy while its next chunk's points are sent.
IN_FLIGHT_PER_WORKER = 2
#: Chunks per worker in a wave (fewer when the wave has fewer tasks).
CHUNKS_PER_WORKER = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_jobs(n_jobs: int | None) -> int | None:
    """``n_jobs`` validated: None (serial, or the cluster's CPUs on Ray), a positive count, or -1 (all CPUs)."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, numbers.Integral) and not isinstance(n_jobs, bool) and (n_jobs >= 1 or n_jobs == -1):
        return int(n_jobs)
    raise InputError(f"jobs must be a positive number of worker processes or -1 for all CPUs, got {n_jobs!r}")


class CellMapper:
    """Runs independent per-cell tasks serially, on a local process pool, or on a Ray cluster.

    Args:
        n_jobs: worker processes (Ray: tasks in flight); None or 1: serial in this process; -1: one per CPU
            (on Ray: None or -1 is one per CPU of the cluster).
        ray_address: run the tasks on this Ray cluster (``"auto"``, ``"ray://host:10001"``, ``"local"``);
            needs ``pigeon-geo[scale]``. A Ray connection this process already holds is used as it is.

    Use as a context manager: workers start on :meth:`start` or on the first wave with two or more tasks, and stop
    on exit.
    """

    def __init__(self, n_jobs: int | None = None, ray_address: str | None = None) -> None:
        self.n_jobs = check_jobs(n_jobs)
        self.ray_address = ray_address
        self._engine: _PoolEngine | _RayEngine | None = None

    @property
    def parallel(self) -> bool:
        return self.ray_address is not None or self._local_workers() > 1

    def _local_workers(self) -> int:
        return available_cpus() if self.n_jobs == -1 else self.n_jobs or 1

    def __enter__(self) -> CellMapper:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(abort=exc_type is not None)

    def start(self, warm_up: Callable[[], None] | None = None) -> None:
        """Start the workers now (nothing if serial), each running ``warm_up`` (e.g. imports) in the background, so
        that they are ready when the first wave comes."""
        if not self.parallel:
            return
        engine = self._started()
        if warm_up is not None:
            for _ in range(engine.workers):
                engine.submit(warm_up, ())

    def _started(self) -> _PoolEngine | _RayEngine:
        if self._engine is None:
            self._engine = _RayEngine(self.ray_address, self.n_jobs) if self.ray_address is not None \
                else _PoolEngine(self._local_workers())
        return self._engine

    def close(self, abort: bool = False) -> None:
        """Stop the workers (and the Ray connection this mapper opened); ``abort`` drops the tasks in flight."""
        if self._engine is not None:
            self._engine.close(abort)
            self._engine = None

    def map(self, fn: Callable, args: Callable[[int], tuple], n: int, cost: Sequence[float],
            done: Callable[[], None] = lambda: None) -> list:
        """``[fn(*args(k)) for k in range(n)]``, with the calls spread over the workers.

        Args:
            fn: a module-level function (it is pickled by reference).
            args: ``k -> arguments of task k``; called just before task k is sent, so that only the chunks in
                flight hold copies of their inputs.
            n: number of tasks.
            cost: (n,) relative cost of each task (its expected time); the costliest are sent first.
            done: called once per finished task (progress bars).
        """
        results: list = [None] * n
        if not self.parallel or n < 2:
            for k in range(n):
                results[k] = fn(*args(k))
                done()
            return results
        engine, pending = self._started(), {}
        limit = IN_FLIGHT_PER_WORKER * engine.workers

        def collect() -> None:
            for handle, values in engine.finished(list(pending)):
                for k, value in zip(pending.pop(handle), values):
                    results[k] = value
                    done()

        for chunk in cost_chunks(cost, CHUNKS_PER_WORKER * engine.workers):
            if len(pending) >= limit:
                collect()
            pending[engine.submit(run_chunk, (fn, [args(k) for k in chunk]))] = chunk
        while pending:
            collect()
        return results


def cost_chunks(cost: Sequence[float], n_chunks: int) -> list[list[int]]:
    """Task numbers in order of falling cost, cut into consecutive chunks of about ``sum(cost) / n_chunks`` each
    (a task costlier than that is a chunk of its own)."""
    order = sorted(range(len(cost)), key=lambda k: -cost[k])
    target = sum(cost) / max(1, n_chunks)
    chunks, current, total = [], [], 0.0
    for k in order:
        current.append(k)
        total += cost[k]
        if total >= target:
            chunks.append(current)
            current, total = [], 0.0
    return chunks + [current] if current else chunks


def run_chunk(fn: Callable, arguments: list[tuple]) -> list:
    """``[fn(*a) for a in arguments]``: one chunk of tasks, run by a worker."""
    return [fn(*a) for a in arguments]


class _PoolEngine:
    """loky's ``ProcessPoolExecutor`` (joblib's process pool): fresh interpreters (fork + exec, no fork of a
    process with threads) that, unlike ``multiprocessing``'s spawn, do not re-run the caller's ``__main__``."""

    def __init__(self, n_jobs: int) -> None:
        from joblib.externals.loky import ProcessPoolExecutor

        self.workers = n_jobs
        self.pool = ProcessPoolExecutor(n_jobs)

    def submit(self, fn: Callable, args: tuple) -> Any:
        return self.pool.submit(fn, *args)

    def finished(self, handles: list) -> list[tuple[Any, Any]]:
        ready, _ = wait(handles, return_when=FIRST_COMPLETED)
        try:
            return [(h, h.result()) for h in ready]
        except BrokenProcessPool:
            raise PigeonError(f"a geocell worker process died (out of memory?); use fewer jobs than {self.workers}"
                              ) from None

    def close(self, abort: bool) -> None:
        # the results are in (or the caller gave up on them): stop the workers rather than wait 0.6 s for them to exit
        self.pool.shutdown(wait=True, kill_workers=True)


class _RayEngine:
    """Ray tasks of one CPU each, on the cluster at ``address`` (or the connection this process holds)."""

    def __init__(self, address: str, n_jobs: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", extra="scale", purpose="splitting geocells on Ray") from None
        self.ray, self.started = ray, not ray.is_initialized()
        if self.started:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise InputError(f"cannot join the Ray cluster at {address!r}: {exc}".splitlines()[0]
                                 + "; check the address (or start one with 'ray start --head')") from None
        cluster_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = cluster_cpus if n_jobs in (None, -1) else n_jobs
        self.remote: dict[Callable, Any] = {}

    def submit(self, fn: Callable, args: tuple) -> Any:
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(num_cpus=1)(fn)
        return self.remote[fn].remote(*args)

    def finished(self, handles: list) -> list[tuple[Any, Any]]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        return list(zip(ready, self.ray.get(ready)))

    def close(self, abort: bool) -> None:
        if self.started:  # shutting Ray down also drops the tasks in flight
            self.ray.shutdown()
