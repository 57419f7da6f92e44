"""Real admin-1 units (Natural Earth 1:10m states and provinces, vendored) and the admin-1 unit of each point."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from pigeon.geography._countries import countries
from pigeon.geography._lookup import polygon_index
from pigeon.geography._resources import resource_path

if TYPE_CHECKING:
    import geopandas as gpd

ADMIN1_FILE = "admin1.parquet"


@functools.lru_cache(maxsize=1)
def admin1_units() -> gpd.GeoDataFrame:
    """The real admin-1 units: 4,520 Natural Earth 1:10m states and provinces of 238 countries (QGIS's world
    map, see ``DATA.md``), and each country of :func:`pigeon.geography.countries` that has none as one unit without
    a name (where other units do not already cover it; the Vatican lies inside the unit of Rome).

    Returns:
        GeoDataFrame (EPSG:4326) with ``country`` (ISO alpha-2, as :func:`pigeon.geography.countries`),
        ``admin1`` (Natural Earth's name, unique within a country; None for a whole country), ``admin1_code``
        (ISO 3166-2, None where no code matched the name) and ``geometry``, sorted by country and name. Cached.
    """
    import geopandas as gpd
    import pandas as pd
    import shapely

    table = gpd.read_parquet(resource_path(ADMIN1_FILE), columns=["country", "admin1", "admin1_code", "geometry"])
    nations = countries()
    alone = nations[~nations["iso_a2"].isin(set(table["country"]))]
    # what the units of other countries do not already cover (the Vatican lies inside the unit of Rome)
    taken = shapely.union_all(table.geometry.to_numpy()[table.sindex.query(alone.geometry.to_numpy())[1]])
    rest = shapely.difference(alone.geometry.to_numpy(), taken)
    keep = ~shapely.is_empty(rest) & (shapely.area(rest) > 1e-9)
    alone = gpd.GeoDataFrame({"country": alone["iso_a2"].to_numpy()[keep], "admin1": None, "admin1_code": None},
                             geometry=rest[keep], crs="EPSG:4326")
    out = pd.concat([table, alone], ignore_index=True).sort_values(["country", "admin1"], kind="stable",
                                                                  na_position="first")
    out = out.reset_index(drop=True).astype({"country": object, "admin1": object, "admin1_code": object})
    out = out.where(out.notna(), None)
    return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:4326")


@functools.lru_cache(maxsize=1)
def _admin1_tree():
    import shapely

    geoms = admin1_units().geometry.to_numpy()
    shapely.prepare(geoms)
    return shapely.STRtree(geoms)


def admin1_index(lat: np.ndarray, lon: np.ndarray, country: np.ndarray | None,
                 max_coast_km: float = 25.0) -> np.ndarray:
    """Row of :func:`admin1_units` of each point: the unit of the point's country that contains it, else the
    nearest unit of that country within ``max_coast_km`` (coasts and islands the simplified outlines miss), else -1.

    Args:
        lat, lon: (n,) validated degrees.
        country: (n,) ISO alpha-2 of each point (None: no unit); None: any country.
        max_coast_km: the tolerance, km.

    Returns:
        int64 array (n,).
    """
    if country is None:
        return polygon_index(_admin1_tree(), lat, lon, max_coast_km)
    return polygon_index(_admin1_tree(), lat, lon, max_coast_km, np.asarray(country, dtype=object),
                         admin1_units()["country"].to_numpy(dtype=object))
