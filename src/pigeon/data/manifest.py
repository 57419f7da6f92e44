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
taken_at   optional capture time (ISO 8601)
split      optional ``train`` / ``val`` / ``test``
...        any enrichment columns (``country``, ``koppen``, ``elevation_m`` ...)
=========  ==========================================================================
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon._io import atomic_path
from pigeon.errors import ArtifactNotFoundError, InputError

REQUIRED_COLUMNS = ("id", "image", "lat", "lon")
SPLITS = ("train", "val", "test")
_MAX_LISTED = 10


def read_table(path: str | os.PathLike, what: str = "table") -> pd.DataFrame:
    """Read a Parquet or CSV file, with one-line errors for missing or unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(path, f"pass an existing {what} (.parquet or .csv)")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".txt"):
            return pd.read_csv(path, dtype={"id": str})
    except Exception as exc:  # pyarrow / pandas raise many types for corrupt files
        raise InputError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    raise InputError(f"{path}: unsupported {what} format {path.suffix!r}; use .parquet or .csv")


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as Parquet or CSV (by suffix), atomically. List cells become JSON in CSV."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InputError(f"{path}: unsupported output format {path.suffix!r}; use .parquet or .csv")
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            out = df.copy()
            for col in out.columns:
                if out[col].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
                    out[col] = out[col].map(lambda v: json.dumps(list(v)) if isinstance(v, (list, tuple, np.ndarray)) else v)
            out.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return path


def _parse_image(value):
    """A manifest ``image`` cell as a str or a list of str (JSON arrays in CSV are decoded)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str) and value.startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value] if len(value) > 1 else (str(value[0]) if value else None)
    return value


def _plain(value):
    """A numpy scalar as the Python value, so messages read ``95.0`` rather than ``np.float64(95.0)``."""
    return value.item() if isinstance(value, np.generic) else value


def validate_manifest(df: pd.DataFrame, where: str = "manifest", require_coords: bool = True) -> pd.DataFrame:
    """Check columns and values; report every bad row in one :class:`InputError`.

    Returns a copy with ``id`` as str, ``lat``/``lon`` as float64 and ``image`` as str or list.
    """
    required = [c for c in REQUIRED_COLUMNS if require_coords or c not in ("lat", "lon")]
    columns = {c.lower(): c for c in df.columns}
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)}; a manifest needs {', '.join(required)} "
            f"(has {', '.join(map(str, df.columns)) or 'none'})"
        )
    df = df.rename(columns={columns[c]: c for c in required if columns[c] != c}).copy()
    if len(df) == 0:
        raise InputError(f"{where}: the manifest is empty; add at least one row")

    problems: list[str] = []
    df["id"] = df["id"].astype(str)
    dup = df["id"].duplicated(keep=False)
    for row in np.flatnonzero(dup.to_numpy())[:_MAX_LISTED]:
        problems.append(f"row {row} id: duplicate id {df['id'].iat[row]!r}")
    df["image"] = df["image"].map(_parse_image)
    for row in np.flatnonzero(df["image"].map(lambda v: not v or not isinstance(v, (str, list))).to_numpy())[:_MAX_LISTED]:
        problems.append(f"row {row} image: empty")
    if "lat" in df.columns and "lon" in df.columns:
        for name, bound in (("lat", 90.0), ("lon", 180.0)):
            values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values) | (np.abs(values) > bound)
            if not require_coords:
                bad &= df[name].notna().to_numpy()
            for row in np.flatnonzero(bad)[:_MAX_LISTED]:
                value = _plain(df[name].iat[row])
                problems.append(f"row {row} {name}: {value!r} is not in [-{bound:g}, {bound:g}]")
            df[name] = values
    if "split" in df.columns:
        bad = ~df["split"].isin(SPLITS) & df["split"].notna()
        for row in np.flatnonzero(bad.to_numpy())[:_MAX_LISTED]:
            problems.append(f"row {row} split: {df['split'].iat[row]!r} is not one of {'/'.join(SPLITS)}")
    if problems:
        raise InputError(f"{where}: {len(problems)} bad value(s): " + "; ".join(problems))
    return df


def read_manifest(path: str | os.PathLike, require_coords: bool = True) -> pd.DataFrame:
    """Load and validate a manifest; ``df.attrs["root"]`` is the folder image paths are relative to."""
    path = Path(path)
    df = validate_manifest(read_table(path, "manifest"), where=str(path), require_coords=require_coords)
    df.attrs["root"] = str(path.resolve().parent)
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write a manifest (Parquet or CSV by suffix), atomically."""
    require_coords = "lat" in df.columns and df["lat"].notna().all()
    df = validate_manifest(df, where=str(path), require_coords=require_coords).copy()
    root, out_dir = df.attrs.get("root"), Path(path).resolve().parent
    if root is not None and Path(root).resolve() != out_dir:  # keep relative image paths pointing at the images
        df["image"] = df["image"].map(lambda v: _rebase(v, Path(root), out_dir))
    df.attrs = {}
    if df["image"].map(lambda v: isinstance(v, list)).any():  # Parquet needs one type per column
        df["image"] = df["image"].map(lambda v: v if isinstance(v, list) else [v])
    return write_table(df, path)


def _rebase(value, root: Path, out_dir: Path):
    """Image path(s) relative to ``root`` made relative to ``out_dir`` (absolute paths are kept)."""
    if isinstance(value, list):
        return [_rebase(v, root, out_dir) for v in value]
    return value if Path(value).is_absolute() else os.path.relpath(root / value, out_dir)


def image_views(df: pd.DataFrame, root: str | os.PathLike | None = None) -> list[list[Path]]:
    """Absolute image paths per row: a list of views (length 1 for single images)."""
    root = Path(root if root is not None else df.attrs.get("root", "."))
    out = []
    for value in df["image"]:
        views = value if isinstance(value, list) else [value]
        out.append([Path(v) if Path(v).is_absolute() else Path(os.path.normpath(root / v)) for v in views])
    return out


def select_split(df: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """Rows of one split (all rows when ``split`` is None), with a clear error if none."""
    if split is None:
        return df
    if "split" not in df.columns:
        raise InputError(f"the manifest has no 'split' column, so split={split!r} cannot be selected; "
                         "use 'pigeon data ingest --split' or add a split column")
    out = df[df["split"] == split]
    if len(out) == 0:
        raise InputError(f"the manifest has no rows with split={split!r}")
    out.attrs = dict(df.attrs)
    return out
