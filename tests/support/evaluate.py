"""A hand-checked evaluation case: six guesses due north of their truths at known distances."""

from __future__ import annotations

import math

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
