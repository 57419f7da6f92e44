"""Splitting cells in parallel: the same cells from 1 process, 2 local processes or Ray, whatever finishes first."""

from __future__ import annotations

import time

import numpy as np
import pytest
import shapely

from pigeon.errors import InputError
from tests.support.cells import MAX_SIZE, MIN_SIZE, as_cells, make_points, sampled_cells

#: (column, row) of the admin-2 areas of country AA that get a dense city besides the one of the toy world
CITY_AREAS = [(0, 0), (2, 2), (3, 0), (1, 3)]


def delayed(value: int, delay: float) -> int:
    """A task that takes ``delay`` seconds (module-level, so worker processes can import it)."""
    time.sleep(delay)
    return value * value


def failing(value: int) -> int:
    raise InputError(f"task {value} failed")


def cities_points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The toy world with four more dense cities of three clusters each: five areas whose cells are split."""
    lat, lon = make_points(seed)
    rng = np.random.default_rng(seed + 1)
    extra_lat, extra_lon = [lat], [lon]
    for i, j in CITY_AREAS:
        for dx, dy in ((0.5, 0.5), (1.9, 0.7), (1.1, 2.0)):
            extra_lon.append(rng.normal(2.5 * i + dx, 0.05, 45).clip(2.5 * i + 0.01, 2.5 * i + 2.49))
            extra_lat.append(rng.normal(2.5 * j + dy, 0.05, 45).clip(2.5 * j + 0.01, 2.5 * j + 2.49))
    return np.concatenate(extra_lat), np.concatenate(extra_lon)


def test_results_come_back_in_task_order_whatever_finishes_first():
    from pigeon.cells._parallel import CellMapper

    rng = np.random.default_rng(0)
    delays = rng.uniform(0, 0.03, 40).round(3)
    delays[0] = 0.3  # costliest, so sent first, and finishes last
    finished = []
    with CellMapper(n_jobs=2) as mapper:
        out = mapper.map(delayed, lambda k: (k, delays[k]), len(delays), cost=delays, done=lambda: finished.append(1))
        assert mapper._engine is not None and mapper._engine.workers == 2  # a pool ran the tasks
    assert out == [k * k for k in range(len(delays))] and len(finished) == len(delays)
    assert mapper._engine is None  # the pool stopped on exit


def test_tasks_travel_in_chunks_of_similar_cost_the_costliest_first():
    from pigeon.cells._parallel import cost_chunks

    cost = [1.0] * 30 + [50.0, 20.0]
    chunks = cost_chunks(cost, 4)  # 25 a chunk
    assert sorted(k for c in chunks for k in c) == list(range(32))  # every task once
    assert chunks[0] == [30] and chunks[1][0] == 31  # the costliest first, alone when above the target
    totals = [sum(cost[k] for k in c) for c in chunks]
    assert all(t >= 25 for t in totals[:-1]) and len(chunks) <= 5
    assert cost_chunks([3.0, 1.0], 8) == [[0], [1]]


def test_a_failing_task_raises_in_the_caller():
    from pigeon.cells._parallel import CellMapper

    with pytest.raises(InputError, match=r"task \d failed"), CellMapper(n_jobs=2) as mapper:
        mapper.map(failing, lambda k: (k,), 2, cost=[1, 0])


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_bad_jobs_are_clear_errors(n_jobs, toy_points):
    from pigeon.cells import GeoCells

    with pytest.raises(InputError, match="jobs must be a positive number"):
        GeoCells.build(*toy_points, n_jobs=n_jobs)


def test_split_oversized_on_two_processes_equals_one_process():
    """Cells split on samples (the sample's seed comes from each cell's points) over 2 processes: same cells."""
    from pigeon.cells._parallel import CellMapper
    from pigeon.cells._split import split_oversized

    parents, members, lat, lon = sampled_cells()
    kwargs = dict(min_size=120, max_size=240, optics_params=[(45, 0.015)], sample_cap=200, seed=0, balance=True)
    serial = split_oversized(parents, members, lat, lon, **kwargs)
    with CellMapper(n_jobs=2) as mapper:
        parallel = split_oversized(parents, members, lat, lon, mapper=mapper, **kwargs)
    assert len(serial[0]) > 2
    assert as_cells(*serial[:2]) == as_cells(*parallel[:2]) and serial[2] == parallel[2]


def test_geocells_on_two_processes_equal_one_process(toy_areas, monkeypatch):
    """Five areas with dense cities, the paper's rules then median cuts: the same shapes and labels for n_jobs 1 and
    2, and the pool really ran the splits."""
    from pigeon.cells import GeoCells, _parallel

    lat, lon = cities_points()
    kwargs = dict(method="semantic", min_size=MIN_SIZE, max_size=MAX_SIZE, areas=toy_areas, seed=0, rules="bounded")
    serial = GeoCells.build(lat, lon, **kwargs)
    submitted = []
    submit = _parallel._PoolEngine.submit
    monkeypatch.setattr(_parallel._PoolEngine, "submit", lambda self, fn, args: submitted.append(1) or
                        submit(self, fn, args))
    parallel = GeoCells.build(lat, lon, n_jobs=2, **kwargs)
    split_areas = serial.table.groupby(["country", "admin1", "admin2"]).size()
    assert (split_areas > 1).sum() >= len(CITY_AREAS) + 1  # every city's area was split
    assert len(submitted) >= len(CITY_AREAS) + 1
    assert len(parallel) == len(serial)
    assert shapely.equals_exact(parallel.table.geometry.to_numpy(), serial.table.geometry.to_numpy(), 0).all()
    np.testing.assert_array_equal(parallel.train_labels, serial.train_labels)
    for column in ("cell_id", "country", "admin1", "admin2", "n_train", "centroid_lat", "centroid_lon"):
        np.testing.assert_array_equal(parallel.table[column].to_numpy(), serial.table[column].to_numpy())
    assert parallel.meta["config"]["n_jobs"] == 2 and serial.meta["config"]["n_jobs"] is None


@pytest.mark.slow
def test_split_oversized_on_ray_equals_one_process():
    pytest.importorskip("ray")
    from pigeon.cells._parallel import CellMapper
    from pigeon.cells._split import split_oversized

    parents, members, lat, lon = sampled_cells()
    kwargs = dict(min_size=120, max_size=240, optics_params=[(45, 0.015)], sample_cap=200, seed=0)
    serial = split_oversized(parents, members, lat, lon, **kwargs)
    with CellMapper(n_jobs=2, ray_address="local") as mapper:  # starts a local Ray instance and stops it
        on_ray = split_oversized(parents, members, lat, lon, mapper=mapper, **kwargs)
    assert as_cells(*serial[:2]) == as_cells(*on_ray[:2])
