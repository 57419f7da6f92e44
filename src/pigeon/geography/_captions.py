"""Synthetic captions for contrastive pretraining, with the paper's templates and probabilities.

Street View (PIGEON): ``A Street View photo {town}{region}in {country}.`` where the region part
("in the region of X ") is kept with p = 0.6 and the town part ("close to the town of X ") with p = 0.4;
the location sentence is kept with p = 0.7 and always when there is no climate sentence. Then, in random
order: climate (p = 0.4), driving side (p = 0.3, only without climate), compass direction from the
heading (p = 0.3, 90 degree bins centred on N/E/S/W), month (p = 0.3). When the row's season is known (a
``season`` column, or ``month`` and ``lat``), the month sentence names it too, hemisphere-aware: "The photo was
taken in July, in winter." south of the equator (the month alone reads the same in both hemispheres).

Photo (PIGEOTTO): ``A photo I took {town}{region}in {country}.`` with town and region whenever known,
kept with p = 0.8 (always without climate); climate (p = 0.45) and driving side (p = 0.2, only without
climate), in random order.
"""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd

from pigeon.errors import InputError, UnknownNameError
from pigeon.geography._enrich import enrich, season
from pigeon.geography._rasters import KOPPEN_NAMES

STYLES = ("streetview", "photo")
#: Country names (as in :func:`countries`) that read with "the": "in the Netherlands".
THE_COUNTRIES = frozenset({
    "Bahamas", "British Indian Ocean Territory", "British Virgin Islands", "Cayman Islands",
    "Central African Republic", "Comoros", "Cook Islands", "Democratic Republic of the Congo", "Dominican Republic",
    "Falkland Islands", "Faroe Islands", "Federated States of Micronesia", "French Southern and Antarctic Lands",
    "Gambia", "Heard Island and McDonald Islands", "Isle of Man", "Maldives", "Marshall Islands", "Netherlands",
    "Northern Mariana Islands", "Philippines", "Pitcairn Islands", "Republic of the Congo", "Seychelles",
    "Solomon Islands", "South Georgia and the Islands", "Turks and Caicos Islands", "United Arab Emirates",
    "United Kingdom", "United States", "United States Minor Outlying Islands", "United States Virgin Islands",
    "Vatican", "Western Sahara",
})
_NEEDED = ("country_name", "admin1", "city", "koppen", "drive_side")
_COMPASS = ("north", "east", "south", "west")
# per style: p(keep) of region, town, climate, location (when climate is present), driving side, compass, month
_KEEP = {
    "streetview": (0.6, 0.4, 0.4, 0.7, 0.3, 0.3, 0.3),
    "photo": (1.0, 1.0, 0.45, 0.8, 0.2, 0.0, 0.0),
}
_OPENING = {"streetview": "A Street View photo", "photo": "A photo I took"}
_PARTS = ("region", "town", "climate", "location_with_climate", "driving_side", "compass", "month")


def caption_settings(style: str = "streetview") -> dict:
    """The template opening and the probability of keeping each optional part, for a style (to record them)."""
    if style not in STYLES:
        raise UnknownNameError("caption style", style, STYLES)
    return {"style": style, "opening": _OPENING[style], "keep_probability": dict(zip(_PARTS, _KEEP[style])),
            "season": "named with the month when known (hemisphere-aware)"}


def captions(df: pd.DataFrame, style: str = "streetview", seed: int = 0) -> pd.Series:
    """One synthetic caption per row, reproducible for a seed.

    Uses ``country_name``, ``admin1`` (region), ``city`` (town), ``koppen``, ``drive_side`` and, if present,
    ``heading`` (degrees), ``month`` (1-12) and ``season`` (else derived from ``month`` and ``lat``). A table
    without the geography columns is enriched first (:func:`enrich`, needs ``lat``/``lon``).

    Args:
        df: manifest rows.
        style: ``"streetview"`` (PIGEON) or ``"photo"`` (PIGEOTTO).
        seed: random seed; each row draws the same number of random numbers, so a row's caption depends
            only on the seed, its position and its own values.

    Returns:
        Series of str with ``df``'s index, named ``caption``.
    """
    if style not in STYLES:
        raise UnknownNameError("caption style", style, STYLES)
    if len(df) == 0:
        raise InputError("cannot caption an empty table; add at least one row")
    if any(c not in df.columns for c in _NEEDED):
        df = enrich(df)
    rng = np.random.default_rng(seed)
    draws = rng.random((len(df), len(_KEEP[style]) + 4))  # one block per row: keep-or-drop, then order
    keep = draws[:, :-4] < np.asarray(_KEEP[style])
    orders = np.argsort(draws[:, -4:], axis=1)
    cols = {c: df[c].to_numpy(dtype=object) if c in df.columns else np.full(len(df), None, dtype=object)
            for c in (*_NEEDED, "heading", "month", "season")}
    if "season" not in df.columns and "month" in df.columns and "lat" in df.columns:
        cols["season"] = season(df["month"], pd.to_numeric(df["lat"], errors="coerce"))
    texts = [
        _caption(style, keep[i], orders[i], **{c: _value(v[i]) for c, v in cols.items()}) for i in range(len(df))
    ]
    return pd.Series(texts, index=df.index, name="caption", dtype=object)


def _value(v):
    """None for missing values (None, NaN, <NA>), else the value."""
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def _caption(style: str, keep: np.ndarray, order: np.ndarray, *, country_name, admin1, city, koppen, drive_side,
             heading, month, season) -> str:
    k_region, k_town, k_climate, k_location, k_drive, k_compass, k_month = keep
    region = f"in the region of {admin1} " if admin1 and k_region else ""
    town = f"close to the town of {city} " if city and k_town else ""
    where = "at sea" if not country_name else f"in {country_phrase(country_name)}"
    climate = f" This location has {_article(KOPPEN_NAMES[koppen])} climate." if koppen and k_climate else ""
    location = f"{_OPENING[style]} {town}{region}{where}." if k_location or not climate else ""
    drive = (f" In this location, people drive on the {drive_side} side of the road."
             if drive_side and not climate and k_drive else "")
    compass = f" This photo is facing {compass_direction(heading)}." if heading is not None and k_compass else ""
    in_season = f", in {season}" if season else ""
    when = (f" The photo was taken in {calendar.month_name[int(month)]}{in_season}."
            if month is not None and k_month else "")
    extras = [climate, drive, compass, when]
    return (location + "".join(extras[j] for j in order)).strip()


def country_phrase(name: str) -> str:
    """``"the Netherlands"`` for names in :data:`THE_COUNTRIES`, else the name."""
    return f"the {name}" if name in THE_COUNTRIES else name


def compass_direction(heading: float) -> str:
    """North/east/south/west for a heading in degrees: 90 degree bins centred on the four directions."""
    return _COMPASS[int(np.ceil((float(heading) % 360.0 - 45.0) / 90.0)) % 4]


def _article(words: str) -> str:
    return f"{'an' if words[0].lower() in 'aeiou' else 'a'} {words}"
