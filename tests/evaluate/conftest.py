"""A hand-checked evaluation fixture: six guesses due north of their truths at known distances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pigeon.geo import EARTH_RADIUS_KM

#: id: (true lat, true lon, error km, true country, guess country)
CASES = {
    "paris": (48.8566, 2.3522, 0.5, "FR", "FR"),
    "berlin": (52.5200, 13.4050, 10.0, "DE", "DE"),
    "madrid": (40.4168, -3.7038, 100.0, "ES", "ES"),
    "vienna": (48.2082, 16.3738, 500.0, "AT", "PL"),
    "pacific": (0.0, -140.0, 1000.0, None, None),  # truth at sea: PIGEON's rule takes the nearest country (wrong)
    "brasilia": (-15.7939, -47.8828, 3000.0, "BR", None),  # guess in the Atlantic
}
KM_PER_DEG_LAT = EARTH_RADIUS_KM * math.pi / 180  # along a meridian, haversine is exactly R * dlat


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
