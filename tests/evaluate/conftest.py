"""A hand-checked evaluation fixture: six guesses due north of their truths at known distances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.support.evaluate import CASES, KM_PER_DEG_LAT


@pytest.fixture
def truth() -> pd.DataFrame:
    lat, lon = np.array([c[0] for c in CASES.values()]), np.array([c[1] for c in CASES.values()])
    return pd.DataFrame({"id": list(CASES), "image": [f"{k}.jpg" for k in CASES], "lat": lat, "lon": lon})


@pytest.fixture
def pred(truth) -> pd.DataFrame:
    d = np.array([c[2] for c in CASES.values()])
    return pd.DataFrame({"id": truth["id"], "lat": truth["lat"] + d / KM_PER_DEG_LAT, "lon": truth["lon"]})


@pytest.fixture
def expected() -> dict:
    d = [c[2] for c in CASES.values()]
    scores = [round(5000 * math.exp(-x / 1492.7)) for x in d]
    return {"n": 6, "acc_1km": 1 / 6, "acc_25km": 2 / 6, "acc_200km": 3 / 6, "acc_750km": 4 / 6,
            "acc_2500km": 5 / 6, "median_km": (100 + 500) / 2, "mean_km": sum(d) / 6,
            "geoscore_mean": sum(scores) / 6, "country_acc": 3 / 6}
