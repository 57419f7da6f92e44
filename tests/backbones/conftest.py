"""The offline default backbone, loaded once (the tiny CLIP folder is a fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def lite0():
    """The offline default backbone on CPU (loaded once)."""
    from pigeon.backbones import load

    return load("efficientnet:lite0", device="cpu")
