"""Fixtures of the model tests (the helpers are in :mod:`tests.support.model`)."""

from __future__ import annotations

import pytest

from tests.support.model import Synthetic, make_synthetic


@pytest.fixture(scope="session")
def synthetic() -> Synthetic:
    return make_synthetic()
