"""Manifests: the table of geotagged images every stage reads.

A manifest is a Parquet or CSV file with one row per *location*:

=========  ==========================================================================
column     meaning
=========  ==========================================================================
id         unique string id
image      image path relative to the manifest's folder (or absolute); for a multi-view
           location (e.g. a 4-view panorama) a list of paths. In CSV a list is written
           as a JSON array: ``["a_0.jpg", "a_90.jpg"]``
lat, lon   degrees, WGS84 (required unless ``require_coords=False``)
heading    optional compass heading of the (first) view, degrees from north
view_lat,  optional centre of each view (lists, one value per view; e.g. Blue Marble's views look
view_lon   away from the location): distances between locations use them
taken_at   optional capture time (ISO 8601)
split      optional ``train`` / ``val`` / ``test``
...        any enrichment columns (``country``, ``koppen``, ``elevation_m`` ...)
=========  ==========================================================================

A manifest's metadata (e.g. the split configuration of :func:`pigeon.data.split_manifest`) travels with it
in ``df.attrs["meta"]``: in the Parquet file, or in ``<name>.csv.meta.json`` beside a CSV file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon._io import read_table, write_table
from pigeon.data._config import SPLITS
from pigeon.errors import InputError
from pigeon.geo import nearest_km
from pigeon.validation import coordinate_problems, find_columns, row_context

REQUIRED_COLUMNS = ("id", "image", "lat", "lon")
#: Optional per-view centre columns (lists, one value per view).
VIEW_COLUMNS = ("view_lat", "view_lon")
_MAX_LISTED = 10


def _parse_list(value):
    """A list cell as a list (numpy arrays from Parquet and JSON arrays from CSV are decoded)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _parse_image(value):
    """A manifest ``image`` cell as a str or a list of str."""
    value = _parse_list(value)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value] if len(value) > 1 else (str(value[0]) if value else None)
    return value


def _view_problems(df: pd.DataFrame) -> list[str]:
    """Parse ``view_lat``/``view_lon`` into float lists (in place) and describe the bad rows."""
    parsed, problems = {name: [] for name in VIEW_COLUMNS}, []
    for row, pair in enumerate(zip(*(df[name].map(_parse_list) for name in VIEW_COLUMNS))):
        try:
            vlat, vlon = (np.asarray(v, dtype=np.float64).reshape(-1) for v in pair)
            ok = (vlat.size == vlon.size > 0 and np.isfinite(vlat).all() and np.isfinite(vlon).all()
                  and (np.abs(vlat) <= 90).all() and (np.abs(vlon) <= 180).all())
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(f"row {row} view_lat/view_lon: need equal-length lists of valid degrees"
                            f"{row_context(df, row)}")
            vlat = vlon = np.empty(0)
        parsed["view_lat"].append(vlat.tolist())
        parsed["view_lon"].append(vlon.tolist())
    for name in VIEW_COLUMNS:
        df[name] = parsed[name]
    return problems


def validate_manifest(df: pd.DataFrame, where: str = "manifest", require_coords: bool = True) -> pd.DataFrame:
    """Check columns and values; report every bad row in one :class:`InputError`.

    Coordinates are checked by :mod:`pigeon.validation`, like every table pigeon reads.

    Returns:
        A copy with ``id`` as str, ``lat``/``lon`` as float64, ``image`` as str or list, and ``view_lat`` /
        ``view_lon`` as float lists where present; ``attrs`` are kept.
    """
    required = [c for c in REQUIRED_COLUMNS if require_coords or c not in ("lat", "lon")]
    df = find_columns(df, required, where, what="a manifest", optional=("lat", "lon"))

    problems: list[str] = []
    df["id"] = df["id"].astype(str)
    dup = df["id"].duplicated(keep=False)
    for row in np.flatnonzero(dup.to_numpy())[:_MAX_LISTED]:
        problems.append(f"row {row} id: duplicate id {df['id'].iat[row]!r}")
    df["image"] = df["image"].map(_parse_image)
    empty = df["image"].map(lambda v: not v or not isinstance(v, (str, list))).to_numpy()
    for row in np.flatnonzero(empty)[:_MAX_LISTED]:
        problems.append(f"row {row} image: empty")
    if "lat" in df.columns and "lon" in df.columns:
        problems += coordinate_problems(df, allow_missing=not require_coords)[:_MAX_LISTED]
    if all(c in df.columns for c in VIEW_COLUMNS):
        problems += _view_problems(df)[:_MAX_LISTED]
    if "split" in df.columns:
        bad = ~df["split"].isin(SPLITS) & df["split"].notna()
        for row in np.flatnonzero(bad.to_numpy())[:_MAX_LISTED]:
            problems.append(f"row {row} split: {df['split'].iat[row]!r} is not one of {'/'.join(SPLITS)}")
    if problems:
        raise InputError(f"{where}: {len(problems)} bad value(s): " + "; ".join(problems))
    return df


def read_manifest(path: str | os.PathLike, require_coords: bool = True) -> pd.DataFrame:
    """Load and validate a manifest.

    ``df.attrs["root"]`` is the folder image paths are relative to; ``df.attrs["meta"]`` its metadata.
    """
    path = Path(path)
    df = validate_manifest(read_table(path, "manifest"), where=str(path), require_coords=require_coords)
    df.attrs["root"] = str(path.resolve().parent)
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write a manifest (Parquet or CSV by suffix) with its ``attrs["meta"]``, atomically."""
    require_coords = "lat" in df.columns and df["lat"].notna().all()
    df = validate_manifest(df, where=str(path), require_coords=require_coords).copy()
    root, out_dir = df.attrs.get("root"), Path(path).resolve().parent
    if root is not None and Path(root).resolve() != out_dir:  # keep relative image paths pointing at the images
        df["image"] = df["image"].map(lambda v: _rebase(v, Path(root), out_dir))
    meta = df.attrs.get("meta") or None
    if df["image"].map(lambda v: isinstance(v, list)).any():  # Parquet needs one type per column
        df["image"] = df["image"].map(lambda v: v if isinstance(v, list) else [v])
    return write_table(df, path, meta=meta)


def _rebase(value, root: Path, out_dir: Path):
    """Image path(s) relative to ``root`` made relative to ``out_dir`` (absolute paths are kept)."""
    if isinstance(value, list):
        return [_rebase(v, root, out_dir) for v in value]
    return value if Path(value).is_absolute() else os.path.relpath(root / value, out_dir)


def manifest_sha256(df: pd.DataFrame) -> str:
    """Hash of the (id, image) pairs: identifies the manifest rows a store or a set of shards was made from."""
    pairs = [[str(i), v if isinstance(v, str) else list(v)] for i, v in zip(df["id"], df["image"])]
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def image_views(df: pd.DataFrame, root: str | os.PathLike | None = None) -> list[list[Path]]:
    """Absolute image paths per row: a list of views (length 1 for single images)."""
    root = Path(root if root is not None else df.attrs.get("root", "."))
    out = []
    for value in df["image"]:
        views = value if isinstance(value, list) else [value]
        out.append([Path(v) if Path(v).is_absolute() else Path(os.path.normpath(root / v)) for v in views])
    return out


def location_points(df: pd.DataFrame, views: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points a row covers: its location, plus (with ``views``) its view centres where the manifest has them.

    Returns:
        ``(lat, lon, row)``: flat float64 degrees and the row position (0..len(df)-1) of each point.
    """
    lat, lon = df["lat"].to_numpy(np.float64), df["lon"].to_numpy(np.float64)
    row = np.arange(len(df))
    if not views or not all(c in df.columns for c in VIEW_COLUMNS):
        return lat, lon, row
    n_views = df["view_lat"].map(len).to_numpy()
    view_lat = np.concatenate([np.asarray(v, dtype=np.float64) for v in df["view_lat"]] or [np.empty(0)])
    view_lon = np.concatenate([np.asarray(v, dtype=np.float64) for v in df["view_lon"]] or [np.empty(0)])
    return np.r_[lat, view_lat], np.r_[lon, view_lon], np.r_[row, np.repeat(row, n_views)]


def distance_to_rows_km(df: pd.DataFrame, reference: pd.DataFrame, views: bool = True
                        ) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``df``, the great-circle distance to the nearest row of ``reference``.

    Two rows are as far apart as their closest pair of :func:`location_points` (with ``views``: locations and
    view centres, so two panoramas whose views look at the same ground count as close; without: locations).

    Returns:
        ``(distance_km (len(df),), nearest (len(df),))``: km, and the position in ``reference`` of the nearest row.
    """
    if len(reference) == 0:
        raise InputError("no reference rows to measure distances to; check the split or the --against file")
    q_lat, q_lon, q_row = location_points(df, views)
    r_lat, r_lon, r_row = location_points(reference, views)
    dist, index = nearest_km(q_lat, q_lon, r_lat, r_lon)
    order = np.lexsort((dist, q_row))  # by row, nearest first
    first = order[np.r_[True, np.diff(q_row[order]) != 0]]
    return dist[first], r_row[index[first]]


def select_split(df: pd.DataFrame, split: str | None, *, where: str = "the manifest",
                 empty_ok: bool = False) -> pd.DataFrame:
    """Rows of one split (all rows when ``split`` is None), with a clear error if none.

    Args:
        df: a manifest (or a batch of one).
        split: ``"train"``, ``"val"``, ``"test"`` or None.
        where: names the table in the errors (e.g. a file and its rows).
        empty_ok: return an empty table instead of raising when no row has ``split`` (a batch of a stream).
    """
    if split is None:
        return df
    if split not in SPLITS:
        raise InputError(f"split must be one of {'/'.join(SPLITS)}, got {split!r}")
    if "split" not in df.columns:
        raise InputError(f"{where} has no 'split' column, so split={split!r} cannot be selected; "
                         "use 'pigeon data split' or add a split column")
    out = df[df["split"] == split]
    if len(out) == 0 and not empty_ok:
        raise InputError(f"{where} has no rows with split={split!r}")
    out.attrs = dict(df.attrs)
    return out


def training_rows(df: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """The rows a stage learns from: those of ``split`` (``"train"``) when the manifest has a split column, else all.

    The one home of this rule: head training, fine-tuning, pretraining, the refiner's gallery, geocells, the
    evaluation's distance-to-training breakdown and the demo call it.
    """
    if "split" not in df.columns:
        if df.empty:
            raise InputError("the manifest has no rows to train on; add some")
        return df
    if not (df["split"] == split).any():
        raise InputError(f"the manifest has no rows with split {split!r}; give some rows split {split} "
                         "('pigeon data split') or drop the split column to use every row")
    return select_split(df, split)
