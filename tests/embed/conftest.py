"""Fixtures: the tiny CLIP backbone (its folder is a fixture of tests/conftest.py) and a small manifest of
generated photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from pigeon.backbones import load

    return load(f"clip:{tiny_clip_dir}", device="cpu")


@pytest.fixture
def photos(tmp_path):
    """``make(n_rows)`` -> manifest DataFrame over generated JPEGs; every third row has 3 views."""
    rng = np.random.default_rng(0)

    def make(n_rows: int = 10) -> pd.DataFrame:
        images = []
        for r in range(n_rows):
            views = [f"img/{r}_{v}.jpg" for v in range(3 if r % 3 == 2 else 1)]
            for v in views:
                (tmp_path / v).parent.mkdir(exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(tmp_path / v)
            images.append(views if len(views) > 1 else views[0])
        df = pd.DataFrame({"id": [f"loc{r}" for r in range(n_rows)], "image": images,
                           "lat": np.linspace(-50, 50, n_rows), "lon": np.linspace(-120, 120, n_rows)})
        df.attrs["root"] = str(tmp_path)
        return df

    return make
