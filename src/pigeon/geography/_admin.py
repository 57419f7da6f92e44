"""Administrative areas at levels 0-2: offline (Natural Earth countries and admin-1 units, admin-2 derived from
GeoNames inside each unit), or read from a GADM 4.1 GeoPackage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pigeon._io import atomic_path
from pigeon._progress import track
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.geography._admin1 import admin1_units
from pigeon.geography._countries import countries
from pigeon.geography._places import place_units, places
from pigeon.geography._resources import cache_dir
from pigeon.geography._topology import border_graph, contiguous_groups, polygon_parts

if TYPE_CHECKING:
    import geopandas as gpd

ADMIN_COLUMNS = ("area_id", "country", "admin1", "admin2", "geometry")
LEVELS = (0, 1, 2)
_CACHE_VERSION = 3  # 2: contiguous areas, Voronoi across the antimeridian; 3: nested in the real admin-1 units
#: Stand-ins for a missing name and the join of two names while grouping places (numpy drops trailing NULs).
_NO_NAME, _JOIN = "\uffff", "\ufffe"
#: Countries reaching this close (degrees) to both sides of ±180 get a Voronoi of places across it.
_ANTIMERIDIAN_DEG = 10.0
#: GADM ``GID_0`` codes that are not ISO 3166 alpha-3 but have an alpha-2 in use.
_GADM_ALPHA3 = {"XKO": "XK"}


def admin_areas(level: int, boundaries: str | os.PathLike | None = None,
                cache: str | os.PathLike | None = None) -> gpd.GeoDataFrame:
    """Polygons of the administrative areas of one level, the input of semantic geocells.

    With ``boundaries=None`` (offline default) level 0 is the Natural Earth countries, level 1 the real
    Natural Earth 1:10m admin-1 units (:func:`pigeon.geography._admin1.admin1_units`, with their ISO 3166-2
    code in ``admin1_code``), and level 2 is *derived* inside each admin-1 unit: Voronoi regions of the
    GeoNames places (population >= 1000) that lie in the unit, grouped by the places' admin-2 names, dissolved
    and clipped to the unit (across the antimeridian where a unit reaches it from both sides), so an admin-2
    area never crosses an admin-1 border. Where places of neighbouring areas interleave, an area falls apart:
    it keeps the piece with most of its places and its islands, and every other piece goes to the area of the
    same admin-1 unit it shares the longest border with, so each area is one connected piece plus islands.
    Admin-2 areas follow the real borders only roughly (to about half the spacing between towns); they are
    built once and cached as GeoParquet in ``cache`` (default ``$PIGEON_CACHE`` or ``~/.cache/pigeon``).

    With ``boundaries`` = a GADM 4.1 GeoPackage (``gadm_410-levels.gpkg``, layers ``ADM_0``/``ADM_1``/
    ``ADM_2``), the real GADM polygons of that level are read with pyogrio.

    Args:
        level: 0 (countries), 1 (states, regions) or 2 (counties, districts).
        boundaries: optional path of a GADM 4.1 levels GeoPackage.
        cache: cache folder for the derived admin-2 layer.

    Returns:
        GeoDataFrame (EPSG:4326) with ``area_id`` (unique str), ``country`` (ISO alpha-2), ``admin1``,
        ``admin2`` (names; None above the level) and ``geometry`` (offline levels 1 and 2 also ``admin1_code``).
    """
    if level not in LEVELS:
        raise InputError(f"admin level must be 0, 1 or 2, got {level!r}")
    if boundaries is not None:
        return _read_gadm(Path(boundaries), level)
    if level == 0:
        table = countries()
        return _frame(table["iso_a2"], table["iso_a2"], None, None, table.geometry)
    if level == 1:
        return _admin1_areas()
    path = cache_dir(cache) / f"admin2_geonames_v{_CACHE_VERSION}.parquet"
    if path.is_file():
        import geopandas as gpd

        return gpd.read_parquet(path)
    areas = _derive_admin2()
    with atomic_path(path) as tmp:
        areas.to_parquet(tmp, index=False)
    return areas


def _frame(area_id, country, admin1, admin2, geometry, admin1_code=None) -> gpd.GeoDataFrame:
    import geopandas as gpd

    n = len(geometry)
    cols = {"area_id": area_id, "country": country, "admin1": admin1, "admin2": admin2}
    if admin1_code is not None:
        cols["admin1_code"] = admin1_code
    data = {k: np.full(n, None, dtype=object) if v is None else np.asarray(v, dtype=object) for k, v in cols.items()}
    return gpd.GeoDataFrame(data, geometry=np.asarray(geometry), crs="EPSG:4326")


def _admin1_areas() -> gpd.GeoDataFrame:
    """The real admin-1 units as admin areas (``area_id`` = ``CC/name``)."""
    units = admin1_units()
    ids = [_area_id(c, [n], 1) for c, n in zip(units["country"], units["admin1"])]
    return _frame(ids, units["country"], units["admin1"], None, units.geometry, units["admin1_code"])


def _derive_admin2() -> gpd.GeoDataFrame:
    """Voronoi regions of the GeoNames places of each admin-1 unit, dissolved by admin-2 name, clipped to the
    unit, made contiguous within the unit."""
    import shapely

    df = places().assign(unit=place_units())
    df = df[~df.duplicated(subset=["lat", "lon"]).to_numpy() & (df["unit"].to_numpy() >= 0)].reset_index(drop=True)
    admin2 = df["admin2"].to_numpy(dtype=object)
    lon, lat, unit = df["lon"].to_numpy(), df["lat"].to_numpy(), df["unit"].to_numpy()
    order = np.argsort(unit, kind="stable")
    bounds = np.searchsorted(unit[order], np.arange(len(admin1_units()) + 1))
    units = _admin1_areas()
    rows: list[tuple] = []
    for i, (code, name, key, geom) in enumerate(track(list(zip(units["country"], units["admin1"],
                                                                units["admin1_code"], units.geometry)),
                                                       "admin-2 areas")):
        sel = order[bounds[i]:bounds[i + 1]]
        names, group = np.unique(pd.Series(admin2[sel]).fillna(_NO_NAME).to_numpy(dtype=str), return_inverse=True)
        names = np.append(names, _NO_NAME)  # a unit without places is one area without an admin-2 name
        for g, shape in zip(*_voronoi_regions(geom, lon[sel], lat[sel], group)):
            rows.append((code, name, None if names[g] == _NO_NAME else names[g], key, shape))
    out = _frame([_area_id(c, [a, b], 2) for c, a, b, _, _ in rows], [r[0] for r in rows], [r[1] for r in rows],
                 [r[2] for r in rows], shapely.make_valid(np.asarray([r[4] for r in rows], dtype=object)),
                 [r[3] for r in rows])
    return out.set_geometry(_contiguous(out, df), crs="EPSG:4326")


def _voronoi_regions(geom, lon: np.ndarray, lat: np.ndarray, group: np.ndarray) -> tuple[list[int], list]:
    """Voronoi regions of the sites of each group (ints 0..), dissolved and clipped to ``geom``; one region for
    ``geom`` whole when there are fewer than two groups. Where ``geom`` reaches the antimeridian from both sides,
    the sites are also copied 360 degrees east and west, so that land by the line goes to the nearest site across it.

    Returns:
        the groups and their (non-empty) regions.
    """
    import shapely

    if len(group) == 0 or group.max() == group.min():
        return [int(group[0]) if len(group) else 0], [geom]
    xmin, ymin, xmax, ymax = geom.bounds
    sites = np.column_stack([lon, lat])
    copies = 1
    if xmin < -180 + _ANTIMERIDIAN_DEG and xmax > 180 - _ANTIMERIDIAN_DEG:
        sites = np.concatenate([sites, sites + [360.0, 0.0], sites - [360.0, 0.0]])
        copies = 3
    extent = shapely.box(xmin - 1, ymin - 1, xmax + 1, ymax + 1)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=extent, ordered=True))
    found, shapes = [], []
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(group.max() + 2))
    for g in range(group.max() + 1):
        rows = order[bounds[g]:bounds[g + 1]]
        if not len(rows):
            continue
        rows = (rows[None, :] + len(lon) * np.arange(copies)[:, None]).ravel()
        region = shapely.coverage_union_all(cells[rows])
        clipped = shapely.intersection(region, shapely.clip_by_rect(geom, *region.bounds))
        if not clipped.is_empty:
            found.append(g)
            shapes.append(clipped)
    return found, shapes


def _voronoi_areas(code: str, geom, pts: pd.DataFrame | None, level: int) -> gpd.GeoDataFrame:
    """The admin areas of one country or unit: Voronoi regions of its places dissolved by their admin-1 (and
    admin-2) names, clipped to ``geom`` (:func:`_voronoi_regions`)."""
    keys = ["admin1"] if level == 1 else ["admin1", "admin2"]
    if pts is None or len(pts) == 0:
        return _frame([_area_id(code, [None, None], level)], [code], [None], [None], [geom])
    labels = pts[keys].astype(object).where(pts[keys].notna(), None)
    names, group = np.unique(labels.fillna(_NO_NAME).astype(str).agg(_JOIN.join, axis=1).to_numpy(dtype=str),
                             return_inverse=True)
    found, shapes = _voronoi_regions(geom, pts["lon"].to_numpy(), pts["lat"].to_numpy(), group)
    parts = [[None if v == _NO_NAME else v for v in names[g].split(_JOIN)] + [None] * (2 - level) for g in found]
    ids = [_area_id(code, n, level) for n in parts]
    return _frame(ids, [code] * len(ids), [n[0] for n in parts], [n[1] for n in parts], shapes)


def _contiguous(areas: gpd.GeoDataFrame, pts: pd.DataFrame) -> np.ndarray:
    """Area shapes with every fragment that borders another area of the country given to the one it borders most.

    Where places of neighbouring areas interleave, the Voronoi regions of an area fall apart into pieces.
    Each area keeps the piece holding most of its places (then the largest) and its islands (pieces that
    border no other area of its admin-1 unit); every other piece goes to the area of the same unit it shares
    the longest border with (:func:`pigeon.geography._topology.contiguous_groups`), so areas stay nested.
    """
    import shapely

    pieces, area = polygon_parts(areas.geometry.to_numpy())
    hit_piece, _ = shapely.STRtree(shapely.points(pts["lon"].to_numpy(), pts["lat"].to_numpy())).query(
        pieces, predicate="contains")
    n_places = np.bincount(hit_piece, minlength=len(pieces))
    scope = (areas["country"].fillna("") + "/" + areas["admin1"].fillna("")).to_numpy(dtype=object)
    i, j, length = border_graph(pieces, scope[area])
    owner = contiguous_groups(area, i, j, length, n_places, shapely.area(pieces))
    merged = pd.Series(pieces).groupby(owner).agg(lambda s: shapely.union_all(s.to_numpy()))
    out = areas.geometry.to_numpy().copy()
    out[merged.index.to_numpy()] = merged.to_numpy()
    return shapely.make_valid(out)


def _area_id(code: str, names: list, level: int) -> str:
    """``CC/admin1[/admin2]``; a missing name reads ``?``."""
    return "/".join([code, *("?" if n is None else str(n) for n in names[:level])])


def _read_gadm(path: Path, level: int) -> gpd.GeoDataFrame:
    """One level of a GADM 4.1 levels GeoPackage as the admin-areas schema."""
    import pycountry
    import pyogrio

    if not path.is_file():
        raise ArtifactNotFoundError(path, "pass the GADM 4.1 GeoPackage gadm_410-levels.gpkg (from gadm.org)")
    layer = f"ADM_{level}"
    try:
        layers = {name for name, _ in pyogrio.list_layers(path)}
    except Exception as exc:  # GDAL raises its own error types for non-GeoPackage files
        raise InputError(
            f"cannot read {path} as a GeoPackage ({type(exc).__name__}); pass gadm_410-levels.gpkg") from None
    if layer not in layers:
        raise InputError(f"{path} has no layer {layer} (has {', '.join(sorted(layers))}); pass gadm_410-levels.gpkg")
    columns = ["GID_0", f"GID_{level}"] + [f"NAME_{i}" for i in range(1, level + 1)]
    gdf = pyogrio.read_dataframe(path, layer=layer, columns=list(dict.fromkeys(columns)))
    missing = [c for c in columns if c not in gdf.columns]
    if missing:
        raise InputError(f"{path} layer {layer} lacks column(s) {', '.join(missing)}; is it GADM 4.1?")

    def alpha2(code: str) -> str | None:
        country = pycountry.countries.get(alpha_3=code)
        return country.alpha_2 if country else _GADM_ALPHA3.get(code)

    country = gdf["GID_0"].map(alpha2)
    admin1 = gdf["NAME_1"] if level >= 1 else None
    admin2 = gdf["NAME_2"] if level >= 2 else None
    out = _frame(gdf[f"GID_{level}"], country, admin1, admin2, gdf.geometry)
    return out.set_crs(gdf.crs or "EPSG:4326", allow_override=True).to_crs("EPSG:4326")
