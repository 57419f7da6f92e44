"""Fixtures of the geocell tests: the toy world of :mod:`tests.support.cells`."""

from __future__ import annotations

import pytest

from tests.support.cells import MAX_SIZE, MIN_SIZE, make_areas, make_points


@pytest.fixture(scope="session")
def toy_areas():
    return make_areas()


@pytest.fixture(scope="session")
def toy_points():
    return make_points()


@pytest.fixture(scope="session")
def semantic(toy_areas, toy_points):
    from pigeon.cells import GeoCells

    lat, lon = toy_points
    return GeoCells.build(lat, lon, method="semantic", min_size=MIN_SIZE, max_size=MAX_SIZE, areas=toy_areas, seed=0)
