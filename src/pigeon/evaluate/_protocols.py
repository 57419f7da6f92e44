"""Evaluation protocols: each peer's own scoring rules, so a figure can be put beside that paper's table.

A :class:`Protocol` is one row of :data:`PROTOCOLS` and names, for one peer, every rule that changes a number:
the distance (which formula, which radius), whether a guess exactly at a radius counts as within it, whether the
GeoGuessr score is rounded per image, and how country (or admin-level) accuracy is decided. Each rule is a small
function here, named by the protocols that use it; add a protocol with :func:`register_protocol`.

=============  ===================================  ========  ==============  =========================
protocol       distance                             within r  GeoScore        country / admin levels
=============  ===================================  ========  ==============  =========================
``pigeon``     haversine, R = 6378.137 km           d < r     rounded, mean   country by polygon
``osv5m``      haversine (atan2 form), R = 6371 km  d < r     unrounded mean  nearest GeoNames place
``plonk``      as ``osv5m``                         d < r     unrounded mean  nearest GeoNames place
``geoclip``    WGS84 geodesic (geopy)               d <= r    not reported    not reported
``georanker``  WGS84 geodesic (geopy)               d < r     not reported    not reported
=============  ===================================  ========  ==============  =========================

The peers' files each rule is read from are in each :class:`Protocol`'s ``source``; ``docs/protocols.md`` has them
side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pigeon.errors import UnknownNameError
from pigeon.geo import GEOGUESSR_DECAY_KM, haversine_km

#: The default protocol of ``pigeon evaluate`` (the paper's own definitions).
DEFAULT_PROTOCOL = "pigeon"
#: OSV-5M's admin-level accuracies, in ``metrics.json``, for the protocols that define them.
ADMIN_LEVEL_KEYS = ("acc_country", "acc_region", "acc_subregion", "acc_city")
#: Truth columns of OSV-5M's metadata (``test.csv``) that give the true areas directly when present.
OSV5M_TRUTH_COLUMNS = ("unique_country", "unique_region", "unique_sub-region", "unique_city")

Distance = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def haversine_atan2_km(radius_km: float) -> Distance:
    """OSV-5M's haversine: ``2 R atan2(sqrt(a), sqrt(1 - a))`` with ``a`` on the prediction's and truth's latitudes."""
    def distance(lat1, lon1, lat2, lon2) -> np.ndarray:
        p1, l1, p2, l2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
        a = np.sin((p1 - p2) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l1 - l2) / 2) ** 2
        return radius_km * 2 * np.arctan2(np.sqrt(a), np.sqrt(1 - a))
    return distance


def geodesic_wgs84_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Distance on the WGS84 ellipsoid (Karney's algorithm, as geopy's ``geodesic``), through pyproj's ``Geod``."""
    from pyproj import Geod

    *_, metres = Geod(ellps="WGS84").inv(*(np.asarray(v, dtype=np.float64) for v in (lon1, lat1, lon2, lat2)))
    return np.asarray(metres, dtype=np.float64) / 1000.0


def geoscore_rounded(d: np.ndarray) -> np.ndarray:
    """GeoGuessr points per image, rounded (PIGEON): ``round(5000 exp(-d / 1492.7))``."""
    return np.round(5000.0 * np.exp(-np.asarray(d, dtype=np.float64) / GEOGUESSR_DECAY_KM))


def geoscore_unrounded(d: np.ndarray) -> np.ndarray:
    """GeoGuessr points per image, unrounded (OSV-5M, PLONK): ``5000 exp(-d / 1492.7)``."""
    return 5000.0 * np.exp(-np.asarray(d, dtype=np.float64) / GEOGUESSR_DECAY_KM)


def country_by_polygon(joined: pd.DataFrame) -> dict:
    """PIGEON's country accuracy: the country polygon that covers the truth (else the nearest polygon, in degrees,
    at any distance); a guess is right when that polygon contains it (no coastal tolerance)."""
    import shapely

    from pigeon.geography import countries

    tree = shapely.STRtree(countries().geometry.to_numpy())
    truth = shapely.points(joined["lon"].to_numpy(np.float64), joined["lat"].to_numpy(np.float64))
    found, geom = tree.query(truth, predicate="covered_by")
    country = np.full(len(truth), -1, dtype=np.int64)
    country[found[::-1]] = geom[::-1]  # the first covering polygon, as the reference's ``sindex.query(...)[0]``
    missing = np.flatnonzero(country < 0)
    if missing.size:
        country[missing] = tree.nearest(truth[missing])
    guess = shapely.points(joined["pred_lon"].to_numpy(np.float64), joined["pred_lat"].to_numpy(np.float64))
    right = shapely.contains(tree.geometries.take(country), guess) if len(truth) else np.zeros(0, dtype=bool)
    return {"country_acc": float(np.mean(right)) if len(truth) else None}


def areas_by_nearest_place(lat, lon) -> pd.DataFrame:
    """OSV-5M's areas of points: the nearest GeoNames ``cities1000`` place by Euclidean distance in (lat, lon)
    degrees (``reverse_geocoder.search``, whose K-D tree is built on raw degrees), keyed as OSV-5M keys them."""
    from pigeon.geography import places
    from pigeon.geography._places import degree_tree

    rows = degree_tree().query(np.column_stack([np.asarray(lat, np.float64), np.asarray(lon, np.float64)]))[1]
    df = places().iloc[rows].fillna("")
    cc, a1, a2 = df["cc"].to_numpy(str), df["admin1"].to_numpy(str), df["admin2"].to_numpy(str)
    country = cc.astype(object)
    region = np.char.add(np.char.add(a1, "_"), cc).astype(object)
    subregion = np.char.add(np.char.add(a2, "_"), region.astype(str)).astype(object)
    city = np.char.add(np.char.add(df["name"].to_numpy(str), "_"), subregion.astype(str)).astype(object)
    return pd.DataFrame(dict(zip(OSV5M_TRUTH_COLUMNS, (country, region, subregion, city))))


def admin_levels_by_nearest_place(joined: pd.DataFrame) -> dict:
    """OSV-5M's ``acc_country`` .. ``acc_city``: the guess's area (nearest GeoNames place) equals the truth's.

    The truth's areas are OSV-5M's ``unique_*`` columns when the truth carries them (rows where one is missing are
    left out of that level, as OSV-5M does), else the nearest place of the true location, as those columns were made.
    """
    guess = areas_by_nearest_place(joined["pred_lat"], joined["pred_lon"])
    truth = areas_by_nearest_place(joined["lat"], joined["lon"])
    out: dict = {}
    for key, column in zip(ADMIN_LEVEL_KEYS, OSV5M_TRUTH_COLUMNS):
        true = joined[column] if column in joined.columns else truth[column]
        known = true.notna().to_numpy() & (true.astype(str) != "nan").to_numpy()
        right = guess[column].to_numpy(dtype=object)[known] == true.to_numpy(dtype=object)[known]
        out[key] = float(np.mean(right)) if known.any() else None
    return {"country_acc": out["acc_country"], **out}


@dataclass(frozen=True)
class Protocol:
    """One peer's scoring rules.

    Attributes:
        name: the ``--protocol`` name.
        description: one line for the report.
        source: the peer's code the rules are read from.
        distance: ``(lat1, lon1, lat2, lon2) -> km``.
        distance_text: how the distance is computed, for people.
        inclusive: a guess exactly ``r`` away counts as within ``r`` (``d <= r``) or not (``d < r``).
        geoscore: points per image from km (then averaged), or None when the protocol reports no GeoScore.
        areas: ``joined -> {metric: value}`` for the country / admin-level accuracies, or None.

    Every peer here reports accuracy at the paper's radii (:data:`pigeon.geo.RADII_KM`).
    """

    name: str
    description: str
    source: str
    distance: Distance
    distance_text: str
    inclusive: bool = False
    geoscore: Callable[[np.ndarray], np.ndarray] | None = None
    areas: Callable[[pd.DataFrame], dict] | None = None

    def within(self, d, radius_km: float) -> np.ndarray:
        """Whether each distance counts as within ``radius_km`` under this protocol."""
        d = np.asarray(d, dtype=np.float64)
        return d <= radius_km if self.inclusive else d < radius_km

    @property
    def rules(self) -> str:
        """The rules in one sentence (the report's line under the table)."""
        score = {None: "no GeoScore", geoscore_rounded: "GeoScore rounded per image",
                 geoscore_unrounded: "GeoScore unrounded"}.get(self.geoscore, "its own GeoScore")
        areas = {None: "no country accuracy", country_by_polygon: "country by polygon",
                 admin_levels_by_nearest_place: "country / region / sub-region / city by the nearest GeoNames place"
                 }.get(self.areas, "its own area accuracy")
        return (f"{self.distance_text}; within r means d {'<=' if self.inclusive else '<'} r; {score}; {areas} "
                f"(from {self.source})")


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol to :data:`PROTOCOLS` (its name is the ``--protocol`` value)."""
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str | Protocol | None = None) -> Protocol:
    """The protocol called ``name`` (None: :data:`DEFAULT_PROTOCOL`; a :class:`Protocol` is returned as is)."""
    if isinstance(name, Protocol):
        return name
    name = DEFAULT_PROTOCOL if name is None else name
    if name not in PROTOCOLS:
        raise UnknownNameError("evaluation protocol", name, PROTOCOLS, hint="use --protocol " + "|".join(PROTOCOLS))
    return PROTOCOLS[name]


_OSV5M = Protocol(
    "osv5m", "OSV-5M (Astruc et al., CVPR 2024)", "gastruc/osv5m metrics/distance_based.py, metrics/utils.py",
    haversine_atan2_km(6371.0), "haversine (atan2 form), R = 6371 km", inclusive=False,
    geoscore=geoscore_unrounded, areas=admin_levels_by_nearest_place)
register_protocol(Protocol(
    "pigeon", "PIGEON / PIGEOTTO (Haas et al., CVPR 2024), the default",
    "LukasHaas/PIGEON evaluation/metrics.py, preprocessing/geo_utils.py", haversine_km,
    "haversine, R = 6378.137 km", inclusive=False, geoscore=geoscore_rounded, areas=country_by_polygon))
register_protocol(_OSV5M)
register_protocol(Protocol(
    "plonk", "PLONK (Dufour et al., CVPR 2025); as OSV-5M, and NaN guesses are left out (pigeon refuses them)",
    "nicolas-dufour/plonk metrics/distance_based.py", _OSV5M.distance, _OSV5M.distance_text, inclusive=False,
    geoscore=geoscore_unrounded, areas=admin_levels_by_nearest_place))
register_protocol(Protocol(
    "geoclip", "GeoCLIP (Vivanco et al., NeurIPS 2023)", "VicenteVivan/geo-clip geoclip/train/eval.py",
    geodesic_wgs84_km, "WGS84 geodesic (geopy's geodesic; here pyproj's Geod, the same algorithm)", inclusive=True))
register_protocol(Protocol(
    "georanker", "GeoRanker (NeurIPS 2025)", "Applied-Machine-Learning-Lab/GeoRanker evaluate.py",
    geodesic_wgs84_km, "WGS84 geodesic (geopy's geodesic; here pyproj's Geod, the same algorithm)", inclusive=False))
