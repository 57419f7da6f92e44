"""Administrative areas at levels 0-2: derived offline from GeoNames, or read from a GADM 4.1 GeoPackage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pigeon._io import atomic_path
from pigeon._progress import track
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.geography._countries import countries
from pigeon.geography._places import places
from pigeon.geography._resources import cache_dir
from pigeon.geography._topology import border_graph, contiguous_groups, polygon_parts

if TYPE_CHECKING:
    import geopandas as gpd

ADMIN_COLUMNS = ("area_id", "country", "admin1", "admin2", "geometry")
LEVELS = (0, 1, 2)
_CACHE_VERSION = 2  # 2: contiguous areas, Voronoi across the antimeridian
#: Countries reaching this close (degrees) to both sides of ±180 get a Voronoi of places across it.
_ANTIMERIDIAN_DEG = 10.0
#: GADM ``GID_0`` codes that are not ISO 3166 alpha-3 but have an alpha-2 in use.
_GADM_ALPHA3 = {"XKO": "XK"}


def admin_areas(level: int, boundaries: str | os.PathLike | None = None,
                cache: str | os.PathLike | None = None) -> gpd.GeoDataFrame:
    """Polygons of the administrative areas of one level, the input of semantic geocells.

    With ``boundaries=None`` (offline default) level 0 is the Natural Earth countries and levels 1 and 2
    are *derived*: Voronoi regions of the GeoNames places (population >= 1000) of each country, grouped
    by the places' admin-1 (and admin-2) names, dissolved and clipped to the country polygon (across the
    antimeridian where a country reaches it from both sides). Where places of neighbouring areas
    interleave, an area falls apart: it keeps the piece with most of its places and its islands, and every
    other piece goes to the area of the same country it shares the longest border with, so each area is
    one connected piece plus islands. These follow the real borders only roughly (to about half the
    spacing between towns). They are built once and cached as GeoParquet in ``cache`` (default
    ``$PIGEON_CACHE`` or ``~/.cache/pigeon``).

    With ``boundaries`` = a GADM 4.1 GeoPackage (``gadm_410-levels.gpkg``, layers ``ADM_0``/``ADM_1``/
    ``ADM_2``), the real GADM polygons of that level are read with pyogrio.

    Args:
        level: 0 (countries), 1 (states, regions) or 2 (counties, districts).
        boundaries: optional path of a GADM 4.1 levels GeoPackage.
        cache: cache folder for the derived layers.

    Returns:
        GeoDataFrame (EPSG:4326) with ``area_id`` (unique str), ``country`` (ISO alpha-2), ``admin1``,
        ``admin2`` (names; None above the level) and ``geometry``.
    """
    if level not in LEVELS:
        raise InputError(f"admin level must be 0, 1 or 2, got {level!r}")
    if boundaries is not None:
        return _read_gadm(Path(boundaries), level)
    if level == 0:
        table = countries()
        return _frame(table["iso_a2"], table["iso_a2"], None, None, table.geometry)
    path = cache_dir(cache) / f"admin{level}_geonames_v{_CACHE_VERSION}.parquet"
    if path.is_file():
        import geopandas as gpd

        return gpd.read_parquet(path)
    areas = _derive(level)
    with atomic_path(path) as tmp:
        areas.to_parquet(tmp, index=False)
    return areas


def _frame(area_id, country, admin1, admin2, geometry) -> gpd.GeoDataFrame:
    import geopandas as gpd

    n = len(geometry)
    cols = {"area_id": area_id, "country": country, "admin1": admin1, "admin2": admin2}
    data = {k: np.full(n, None, dtype=object) if v is None else np.asarray(v, dtype=object) for k, v in cols.items()}
    return gpd.GeoDataFrame(data, geometry=np.asarray(geometry), crs="EPSG:4326")


def _derive(level: int) -> gpd.GeoDataFrame:
    """Voronoi regions of GeoNames places, dissolved by admin name(s), clipped to each country, made contiguous."""
    import shapely

    df = places().drop_duplicates(subset=["lat", "lon"])
    by_cc = dict(tuple(df.groupby("cc", sort=False)))
    table = countries()
    parts = [_voronoi_areas(code, geom, by_cc.get(code), level)
             for code, geom in track(list(zip(table["iso_a2"], table.geometry)), f"admin-{level} areas")]
    out = pd.concat(parts, ignore_index=True)
    out = out.set_geometry(shapely.make_valid(out.geometry.to_numpy()), crs="EPSG:4326")
    return out.set_geometry(_contiguous(out, df), crs="EPSG:4326")


def _voronoi_areas(code: str, geom, pts: pd.DataFrame | None, level: int) -> gpd.GeoDataFrame:
    """The admin areas of one country: Voronoi regions of its places dissolved by name, clipped to ``geom``.

    Where the country reaches the antimeridian from both sides, the places are also copied 360 degrees
    east and west, so that land by the line goes to the nearest place across it.
    """
    import shapely

    keys = ["admin1"] if level == 1 else ["admin1", "admin2"]
    if pts is None or pts[keys].drop_duplicates().shape[0] <= 1:
        first = pts.iloc[0] if pts is not None else {}
        names = [_name(first.get(k)) for k in ("admin1", "admin2")[:level]] + [None] * (2 - level)
        return _frame([_area_id(code, names, level)], [code], [names[0]], [names[1]], [geom])
    xmin, ymin, xmax, ymax = geom.bounds
    sites = np.column_stack([pts["lon"], pts["lat"]])
    copies = 1
    if xmin < -180 + _ANTIMERIDIAN_DEG and xmax > 180 - _ANTIMERIDIAN_DEG:
        sites = np.concatenate([sites, sites + [360.0, 0.0], sites - [360.0, 0.0]])
        copies = 3
    extent = shapely.box(xmin - 1, ymin - 1, xmax + 1, ymax + 1)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=extent, ordered=True))
    groups = pts[keys].reset_index(drop=True).groupby(keys, dropna=False, sort=True).indices
    names, shapes = [], []
    for name, rows in groups.items():
        rows = (rows[None, :] + len(pts) * np.arange(copies)[:, None]).ravel()
        region = shapely.coverage_union_all(cells[rows])
        clipped = shapely.intersection(region, shapely.clip_by_rect(geom, *region.bounds))
        if not clipped.is_empty:
            names.append([_name(v) for v in np.atleast_1d(name)] + [None] * (2 - level))
            shapes.append(clipped)
    ids = [_area_id(code, n, level) for n in names]
    return _frame(ids, [code] * len(ids), [n[0] for n in names], [n[1] for n in names], shapes)


def _contiguous(areas: gpd.GeoDataFrame, pts: pd.DataFrame) -> np.ndarray:
    """Area shapes with every fragment that borders another area of the country given to the one it borders most.

    Where places of neighbouring areas interleave, the Voronoi regions of an area fall apart into pieces.
    Each area keeps the piece holding most of its places (then the largest) and its islands (pieces that
    border no other area); every other piece goes to the area it shares the longest border with
    (:func:`pigeon.geography._topology.contiguous_groups`).
    """
    import shapely

    pieces, area = polygon_parts(areas.geometry.to_numpy())
    hit_piece, _ = shapely.STRtree(shapely.points(pts["lon"].to_numpy(), pts["lat"].to_numpy())).query(
        pieces, predicate="contains")
    n_places = np.bincount(hit_piece, minlength=len(pieces))
    i, j, length = border_graph(pieces, areas["country"].to_numpy(dtype=object)[area])
    owner = contiguous_groups(area, i, j, length, n_places, shapely.area(pieces))
    merged = pd.Series(pieces).groupby(owner).agg(lambda s: shapely.union_all(s.to_numpy()))
    out = areas.geometry.to_numpy().copy()
    out[merged.index.to_numpy()] = merged.to_numpy()
    return shapely.make_valid(out)


def _name(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


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
