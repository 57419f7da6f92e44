"""Fixtures of the model tests (the helpers are in :mod:`tests.support.model`)."""

from __future__ import annotations

import pytest

from tests.support.model import Synthetic, e2e_dataset, make_synthetic


@pytest.fixture(scope="session")
def synthetic() -> Synthetic:
    return make_synthetic()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 2-view Blue Marble dataset with auxiliary columns, its tiny-backbone embeddings and naive cells."""
    return e2e_dataset(tmp_path_factory.mktemp("e2e"))
