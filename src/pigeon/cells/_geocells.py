"""The :class:`GeoCells` object: build, save, load, assign points, centroids and distances."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pigeon._io import atomic_path, provenance, read_json, write_json
from pigeon._config import drop_unset
from pigeon.cells._config import CellConfig
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.geo import check_coords, pairwise_haversine_km, spherical_means
from pigeon.presets import preset_name, resolve

# The builders (shapely, scipy, the geography stage) are imported where cells are built or points assigned, so
# that loading a model's cells for a prediction reads only their names and centroids (start-up time).

if TYPE_CHECKING:
    import geopandas as gpd

TABLE_COLUMNS = ("cell_id", "country", "admin1", "admin2", "centroid_lat", "centroid_lon", "n_train", "geometry")
CELLS_FILE, META_FILE = "cells.parquet", "meta.json"
#: The equal-area projection cell areas are measured in (NSIDC EASE-Grid 2.0 Global, cylindrical equal-area).
EQUAL_AREA_CRS = "EPSG:6933"
#: With the bounded rules, rounds of median cuts and contiguity cleanup after the first, while a cell is above
#: max_size.
_REBALANCE_ROUNDS = 3
_BUILD_HINT = "build it with 'pigeon cells build MANIFEST -o DIR'"


class GeoCells:
    """Geocells: the classes of a geolocation head, with shapes, names and training-point centroids.

    Row ``i`` of :attr:`table` is class ``i``. Build with :meth:`build`, persist with :meth:`save` /
    :meth:`load` (``cells.parquet`` GeoParquet + ``meta.json``).

    Attributes:
        meta: provenance and build parameters (``meta.json``).
        train_labels: (n,) cell of each training point after :meth:`build`; None after :meth:`load`.
    """

    def __init__(self, table: gpd.GeoDataFrame, meta: dict[str, Any] | None = None,
                 train_labels: np.ndarray | None = None) -> None:
        missing = [c for c in TABLE_COLUMNS if c not in table.columns]
        if missing:
            raise InputError(f"geocell table lacks column(s) {', '.join(missing)}; rebuild with 'pigeon cells build'")
        self._table = table.reset_index(drop=True)
        self.meta = meta or {}
        self.train_labels = train_labels
        self._shapes_file: Path | None = None  # after load: the GeoParquet whose shapes are read on first use

    # construction -------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, lat, lon, config: CellConfig | None = None, *, preset: str | None = None,
              areas: gpd.GeoDataFrame | None = None, **options: Any) -> GeoCells:
        """Build geocells from training coordinates.

        >>> GeoCells.build(lat, lon, preset="photo", n_jobs=-1)        # or GeoCells.build(lat, lon, CellConfig(...))

        Args:
            lat, lon: (n,) training coordinates, degrees.
            config: a :class:`~pigeon.cells.CellConfig`; by default the preset's, with ``options`` over it.
            preset: ``"streetview"`` (30/60 and the street-view OPTICS rounds, PIGEON, the default) or ``"photo"``
                (1000/2000 and the photo rounds, PIGEOTTO); see :mod:`pigeon.presets`.
            areas: finest admin areas (GeoDataFrame with country, admin1, admin2, geometry in EPSG:4326), instead
                of reading ``config.boundaries``. Semantic cells use them as shapes; naive cells only for names.
            options: fields of :class:`~pigeon.cells.CellConfig` (``method``, ``min_size``, ``max_size``,
                ``optics_params``, ``boundaries``, ``seed``, ``rules``, ``n_jobs``, ``ray_address``); None keeps
                the preset's value.

        Returns:
            The cells, with :attr:`train_labels` set.

        Raises:
            InputError: bad coordinates, too few points, inconsistent sizes, unreadable boundaries.
        """
        if config is not None and (preset is not None or drop_unset(options)):
            raise InputError("pass either a CellConfig or a preset and options, not both")
        cfg = (config or resolve(CellConfig, "cells", preset, **options)).validate()
        from pigeon.cells._parallel import CellMapper
        from pigeon.cells._semantic import check_areas

        lat, lon = check_coords(lat, lon, "training points")
        _check_sizes(len(lat), cfg.min_size, cfg.max_size)
        mapper = CellMapper(cfg.n_jobs, cfg.ray_address)
        start = time.perf_counter()
        source = "areas argument" if areas is not None else cfg.boundaries
        if cfg.method == "semantic" or source is not None:
            areas = check_areas(areas if areas is not None else read_areas(cfg.boundaries))
            source = source or "pigeon.geography.admin_areas(2): GeoNames-derived, inside Natural Earth admin-1"
        merges: dict = {}
        if cfg.method == "naive":
            geoms, labels = _naive(lat, lon, cfg.max_size)
            names = None
        else:
            with mapper:
                geoms, labels, names, merges = _semantic(lat, lon, areas, cfg, mapper)
        table, labels = _table(geoms, labels, lat, lon, names, areas)
        sizes = table["n_train"].to_numpy()
        semantic = cfg.method == "semantic"
        config_record = {
            **cfg.to_dict(), "preset": preset_name(preset),
            "optics_params": cfg.to_dict()["optics_params"] if semantic else None,
            "rules": cfg.rules if semantic else None,
            "boundaries": source, "n_train": int(len(lat)), "n_cells": int(len(table)),
            "undersized_cells": np.flatnonzero(sizes < cfg.min_size).tolist(),
            "oversized_cells": np.flatnonzero(sizes > cfg.max_size).tolist(),
            **merges,
            "build_seconds": round(time.perf_counter() - start, 3),
        }
        return cls(table, provenance("geocells", config_record), labels)

    @classmethod
    def load(cls, path: str | os.PathLike) -> GeoCells:
        """Load cells saved by :meth:`save` from a folder.

        Names and centroids are read now; the shapes (geopandas, shapely) when first used (:attr:`table`,
        :meth:`assign`), so a prediction that needs only names and centroids does not pay for them.
        """
        import pyarrow.parquet as pq

        path = Path(path)
        file = path / CELLS_FILE
        if not file.is_file():
            raise ArtifactNotFoundError(file, _BUILD_HINT)
        try:
            schema = pq.read_schema(file)
            if b"geo" not in (schema.metadata or {}):
                raise ValueError("no GeoParquet metadata")
            attributes = pd.read_parquet(file, columns=[c for c in schema.names if c != "geometry"])
        except Exception as exc:  # pyarrow raises several types for a corrupt or non-geo file
            raise InputError(f"cannot read {file} as GeoParquet ({type(exc).__name__}); {_BUILD_HINT}") from None
        cells = cls(attributes.assign(geometry=None), read_json(path / META_FILE, _BUILD_HINT))
        cells._shapes_file = file
        return cells

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``cells.parquet`` (GeoParquet) and ``meta.json`` into folder ``path``, atomically."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        table = self.table
        with atomic_path(path / CELLS_FILE) as tmp:
            table.to_parquet(tmp, index=False)
        write_json(path / META_FILE, self.meta)
        return path

    # access -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        method = self.meta.get("config", {}).get("method", "?")
        return f"GeoCells(n={len(self)}, method={method!r})"

    @property
    def table(self) -> gpd.GeoDataFrame:
        """GeoDataFrame (EPSG:4326), one row per cell: cell_id, country, admin1, admin2, centroid_lat,
        centroid_lon, n_train, geometry."""
        if self._shapes_file is not None:
            import geopandas as gpd

            try:
                self._table = gpd.read_parquet(self._shapes_file)
            except Exception as exc:
                raise InputError(f"cannot read {self._shapes_file} as GeoParquet ({type(exc).__name__}); "
                                 f"{_BUILD_HINT}") from None
            self._shapes_file = None
        return self._table

    @property
    def attributes(self) -> pd.DataFrame:
        """The table without the shapes (names, centroids, sizes): cheap, read without geopandas."""
        return pd.DataFrame(self._table[[c for c in self._table.columns if c != "geometry"]])

    @property
    def areas_km2(self) -> np.ndarray:
        """(n_cells,) area of each cell, km² on an equal-area projection: recorded when the cells were built
        (``area_km2``, read without the shapes), else measured from the shapes (cells saved before it was)."""
        if "area_km2" in self._table.columns:
            return self._table["area_km2"].to_numpy(np.float64)
        return cell_areas_km2(self.table)

    @property
    def centroids(self) -> np.ndarray:
        """(n_cells, 2) ``(lat, lon)`` degrees: the spherical mean of each cell's training points."""
        return self._table[["centroid_lat", "centroid_lon"]].to_numpy(dtype=np.float64)

    def assign(self, lat, lon) -> np.ndarray:
        """Cell of each point: the cell polygon that covers it, else the nearest cell (sea, borders).

        Args:
            lat, lon: (n,) degrees.

        Returns:
            (n,) int64 cell indices.
        """
        from pigeon.cells._spatial import locate_points

        lat, lon = check_coords(lat, lon, "points to assign")
        return locate_points(lat, lon, self.table.geometry.to_numpy())

    def distances_km(self, lat, lon) -> np.ndarray:
        """(n_points, n_cells) great-circle km from each point to each cell centroid (label smoothing input)."""
        lat, lon = check_coords(lat, lon, "points")
        return pairwise_haversine_km(np.column_stack([lat, lon]), self.centroids)


def read_areas(boundaries: str | os.PathLike | None) -> gpd.GeoDataFrame:
    """The finest admin areas from ``boundaries`` (GADM GeoPackage, GeoParquet or GeoJSON) or the offline default.

    For a GADM GeoPackage, countries without admin-2 areas fall back to admin-1, then to the country.
    """
    import geopandas as gpd

    from pigeon.geography import admin_areas

    if boundaries is None:
        return admin_areas(2)
    path = Path(boundaries)
    if not path.is_file():
        raise ArtifactNotFoundError(path, "pass a GADM 4.1 GeoPackage or a GeoParquet/GeoJSON of admin areas")
    if path.suffix.lower() in (".parquet", ".geoparquet", ".geojson", ".json"):
        try:
            return gpd.read_parquet(path) if "parquet" in path.suffix.lower() else gpd.read_file(path)
        except Exception as exc:  # GDAL/pyarrow errors vary by file
            raise InputError(f"cannot read admin areas from {path} ({type(exc).__name__}); "
                             "pass a GeoParquet/GeoJSON with country/admin1/admin2 columns") from None
    levels = [admin_areas(level, boundaries=path) for level in (2, 1, 0)]
    parts, seen = [], set()
    for level in levels:
        code = level["country"].fillna("")
        parts.append(level[~code.isin(seen)])
        seen |= set(code)
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs="EPSG:4326")


def _check_sizes(n: int, min_size: int, max_size: int) -> None:
    if n == 0:
        raise InputError("no training points to build geocells from; check the manifest and --split")
    if min_size < 1 or max_size < 1:
        raise InputError(f"cell sizes must be >= 1, got min_size={min_size}, max_size={max_size}")
    if max_size < min_size:
        raise InputError(f"max_size ({max_size}) is below min_size ({min_size}); use e.g. max_size = 2 x min_size")
    if n < min_size:
        raise InputError(f"only {n} training points, fewer than min_size={min_size}; lower --min-size or add data")


def _naive(lat: np.ndarray, lon: np.ndarray, max_size: int) -> tuple[np.ndarray, np.ndarray]:
    import shapely

    from pigeon.cells._naive import naive_boxes
    from pigeon.geography._topology import wrap_geometry

    boxes, labels = naive_boxes(lat, lon, max_size)
    geoms = shapely.box(boxes[:, 1], boxes[:, 0], boxes[:, 3], boxes[:, 2])
    return np.asarray([wrap_geometry(g) for g in geoms], dtype=object), labels


def _semantic(lat, lon, areas, cfg: CellConfig, mapper):
    """Shapes, point labels, (country, admin1, admin2) of semantic cells and how they crossed admin-1 borders."""
    from pigeon.cells._semantic import contiguous_split_cells
    from pigeon.cells._split import split_oversized, warm_up

    min_size, max_size, optics, seed = cfg.min_size, cfg.max_size, cfg.optics_params, cfg.seed
    bounded = cfg.rules == "bounded"
    mapper.start(warm_up)  # workers start while the areas are located and fused
    geoms, members, cell_area, point_area, merges = _fused_cells(lat, lon, areas, min_size, seed)
    country = areas["country"].fillna("").to_numpy(dtype=object)
    geoms, members, origin = split_oversized(list(geoms), members, lat, lon, min_size=min_size, max_size=max_size,
                                             optics_params=optics, seed=seed, balance=bounded, mapper=mapper)
    geoms, members = contiguous_split_cells(geoms, members, lat, lon, country[cell_area[origin]])
    for _ in range(_REBALANCE_ROUNDS if bounded else 0):  # the cleanup can push a cell back above max_size
        if max(len(m) for m in members) <= max_size:
            break
        geoms, members, again = split_oversized(geoms, members, lat, lon, min_size=min_size, max_size=max_size,
                                                optics_params=[], seed=seed, balance=True, mapper=mapper)
        origin = list(np.asarray(origin)[again])
        geoms, members = contiguous_split_cells(geoms, members, lat, lon, country[cell_area[origin]])
    labels = np.empty(len(lat), dtype=np.int64)
    for i, idx in enumerate(members):
        labels[idx] = i
    # a piece split off a fused cell is named after its own points' area, not after the area of the whole
    named = majority_area(labels, point_area, len(members))
    named = np.where(named >= 0, named, cell_area[origin])
    names = areas[["country", "admin1", "admin2"]].iloc[named].reset_index(drop=True)
    unit = (areas["country"].fillna("") + "/" + areas["admin1"].fillna("")).to_numpy(dtype=object)[point_area]
    spans = pd.Series(unit).groupby(labels).nunique()
    return np.asarray(geoms, dtype=object), labels, names, {
        "cells_across_admin1": int((spans > 1).sum()), "admin1_merges": merges}


def _fused_cells(lat, lon, areas, min_size, seed):
    """Cells before splitting: areas located, empty ones attached, small cells fused, each cell made contiguous.

    Returns:
        ``geoms``, ``members`` (point indices per cell), ``cell_area`` (the area each cell is named after: the one
        holding most of its points), ``point_area`` and the admin-1 crossings of the attachment and fusion rules.
    """
    import shapely

    from pigeon.cells._semantic import contiguous_cells, fuse_small, initial_cells
    from pigeon.cells._spatial import locate_points
    from pigeon.geography._topology import polygon_parts

    pieces, piece_area = polygon_parts(areas.geometry.to_numpy())
    point_piece = locate_points(lat, lon, pieces)
    point_area = piece_area[point_piece]
    area_cell, attached = initial_cells(point_area, areas)
    sizes = np.bincount(area_cell[point_area], minlength=len(areas))
    area_cell, _, fused = fuse_small(area_cell, sizes, areas, min_size, seed)
    country = areas["country"].fillna("").to_numpy(dtype=object)
    piece_cell = contiguous_cells(area_cell[piece_area], pieces, country[piece_area],
                                  np.bincount(point_piece, minlength=len(pieces)))
    kept = np.flatnonzero(piece_cell >= 0)
    cells, piece_label = np.unique(piece_cell[kept], return_inverse=True)
    geoms = pd.Series(pieces[kept]).groupby(piece_label).agg(lambda g: shapely.union_all(g.to_numpy())).to_numpy()
    point_cell = np.searchsorted(cells, piece_cell[point_piece])
    cell_area = majority_area(point_cell, point_area, len(cells))
    by_point = pd.Series(np.arange(len(lat))).groupby(point_cell).indices
    members = [by_point[i] for i in range(len(cells))]
    merges = {"empty areas attached to a cell of another admin-1 (their admin-1 holds no training point)": attached,
              **{f"small cells fused into {tier} in another admin-1 (none of their admin-1 borders them)": n
                 for tier, n in fused.items()}}
    return geoms, members, cell_area, point_area, merges


def majority_area(point_cell: np.ndarray, point_area: np.ndarray, n_cells: int) -> np.ndarray:
    """(n_cells,) the area holding most of each cell's points (ties: the first area); -1 for a cell without any."""
    votes = pd.DataFrame({"cell": point_cell, "area": point_area}).value_counts().reset_index()
    named = votes.sort_values(["cell", "count", "area"], ascending=[True, False, True]).drop_duplicates("cell")
    return named.set_index("cell")["area"].reindex(np.arange(n_cells), fill_value=-1).to_numpy(np.int64)


def _table(geoms: np.ndarray, labels: np.ndarray, lat: np.ndarray, lon: np.ndarray,
           names: pd.DataFrame | None, areas: gpd.GeoDataFrame | None) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """The cell table in a stable order (country, admin-1, admin-2, centroid) and the relabelled points."""
    import geopandas as gpd

    k = len(geoms)
    clat, clon = spherical_means(lat, lon, labels, k)
    if names is None:
        names = _names_at(clat, clon, areas)
    table = pd.DataFrame({
        "country": names["country"].to_numpy(dtype=object), "admin1": names["admin1"].to_numpy(dtype=object),
        "admin2": names["admin2"].to_numpy(dtype=object), "centroid_lat": clat, "centroid_lon": clon,
        "n_train": np.bincount(labels, minlength=k).astype(np.int64),
    })
    table = table.where(table.notna(), None)
    key = table[["country", "admin1", "admin2"]].fillna("").astype(str).assign(lat=-clat, lon=clon)
    order = key.sort_values(list(key.columns), kind="stable").index.to_numpy()
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "cell_id", np.arange(k, dtype=np.int64))
    cells = gpd.GeoDataFrame(table, geometry=np.asarray(geoms, dtype=object)[order], crs="EPSG:4326")
    cells.insert(cells.columns.get_loc("geometry"), "area_km2", cell_areas_km2(cells))
    return cells, rank[labels]


def cell_areas_km2(table: gpd.GeoDataFrame) -> np.ndarray:
    """Area (km²) of every cell polygon of a cells table, on an equal-area projection (0 without a shape)."""
    import geopandas as gpd

    geometry = gpd.GeoSeries(table.geometry, crs=getattr(table, "crs", None) or "EPSG:4326")
    areas = geometry.to_crs(EQUAL_AREA_CRS).area.to_numpy(np.float64) / 1e6
    return np.nan_to_num(areas, nan=0.0)


def _names_at(lat: np.ndarray, lon: np.ndarray, areas: gpd.GeoDataFrame | None) -> pd.DataFrame:
    """Country, admin-1, admin-2 at the centroids: from ``areas`` when given, else reverse geocoding."""
    if areas is not None:
        from pigeon.cells._spatial import locate_points

        idx = locate_points(lat, lon, areas.geometry.to_numpy())
        return areas[["country", "admin1", "admin2"]].iloc[idx].reset_index(drop=True)
    from pigeon.geography import locate

    return locate(lat, lon)[["country", "admin1", "admin2"]]
