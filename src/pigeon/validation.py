"""One validation path for coordinates and tables: manifests, metrics, splits and evaluation all check here.

Every check collects *all* bad rows and raises one :class:`~pigeon.errors.InputError` on one line that names
them (at most a few, then "and N more"), what is wrong and how to fix it. Rows are numbered from 0 in table
order; for a CSV file read with :func:`pigeon._io.read_table` the message also gives the file line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from pigeon.errors import InputError

#: Valid ranges, degrees (bounds inclusive).
COORD_BOUNDS = {"lat": 90.0, "lon": 180.0}
_MAX_LISTED = 5


def listed(items: Iterable, limit: int = _MAX_LISTED) -> str:
    """``"a, b, c and 4 more"``: a short list for a one-line message."""
    items = list(items)
    text = ", ".join(map(str, items[:limit]))
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def plain(value):
    """A numpy scalar as the Python value, so messages read ``95.0`` rather than ``np.float64(95.0)``."""
    return value.item() if isinstance(value, np.generic) else value


def check_coords(lat, lon, where: str = "coordinates") -> tuple[np.ndarray, np.ndarray]:
    """Validate arrays of latitudes and longitudes; return them as float64 1-d arrays.

    Raises:
        InputError: naming the first bad row, its value and the valid range.
    """
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64)).reshape(-1)
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64)).reshape(-1)
    if lat.shape != lon.shape:
        raise InputError(f"{where}: {lat.size} latitudes but {lon.size} longitudes")
    for name, values in (("lat", lat), ("lon", lon)):
        bound = COORD_BOUNDS[name]
        bad = ~np.isfinite(values) | (np.abs(values) > bound)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise InputError(
                f"{where}: {name} must be a finite number in [-{bound:g}, {bound:g}]; "
                f"row {rows[0]} has {float(values[rows[0]])!r}"
                + (f" ({rows.size} bad rows)" if rows.size > 1 else "")
            )
    return lat, lon


def check_labelled(X, coords, cells, n_cells: int, what: str = "embeddings") -> tuple[np.ndarray, np.ndarray]:
    """The one check of labelled embeddings (head training, the refiner's gallery): ``X`` a non-empty (N, D) array
    or reader of rows (only its shape is looked at), ``coords`` (N, 2) and ``cells`` (N,) in ``[0, n_cells)``.

    Returns:
        ``coords`` as float64 (N, 2) and ``cells`` as int64 (N,).
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    cells = np.asarray(cells, dtype=np.int64).ravel()
    shape = tuple(X.shape)
    if len(shape) != 2 or not shape[0]:
        raise InputError(f"{what} must be a non-empty (N, D) array, got shape {shape}")
    if not (shape[0] == len(coords) == len(cells)):
        raise InputError(f"{what} ({shape[0]}), coordinates ({len(coords)}) and cells ({len(cells)}) differ in length")
    if cells.min() < 0 or cells.max() >= n_cells:
        raise InputError(f"cell labels out of range: cells must be in [0, {n_cells}), got {cells.min()}..{cells.max()}; "
                         "label the points with the same geocells")
    return coords, cells


def row_context(df: pd.DataFrame, row: int) -> str:
    """`` (line 5, id 'x')``: what else names a row in a message, its CSV line and id where known ("" if nothing)."""
    parts = []
    if df.attrs.get("source", {}).get("format") == "csv":
        parts.append(f"line {row + 2}")  # the header is line 1
    if "id" in df.columns:
        parts.append(f"id {str(df['id'].iat[row])!r}")
    return f" ({', '.join(parts)})" if parts else ""


def find_columns(df: pd.DataFrame, required: Sequence[str], where: str, what: str = "the table",
                 optional: Sequence[str] = ()) -> pd.DataFrame:
    """Rename columns to lower-case ``required`` / ``optional`` names (any case accepted); check presence and rows.

    Returns:
        A copy with the columns renamed (other columns kept, ``attrs`` kept).

    Raises:
        InputError: a required column is missing, or the table has no rows.
    """
    columns = {str(c).lower(): c for c in df.columns}
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(f"{where}: missing column(s) {', '.join(missing)}; {what} needs {', '.join(required)} "
                         f"(has {', '.join(map(str, df.columns)) or 'none'})")
    rename = {columns[c]: c for c in (*required, *optional) if c in columns and columns[c] != c}
    out = df.rename(columns=rename).copy()
    out.attrs = dict(df.attrs)
    if len(out) == 0:
        raise InputError(f"{where}: no rows (the table is empty); add at least one row")
    return out


def coordinate_problems(df: pd.DataFrame, allow_missing: bool = False) -> list[str]:
    """Turn ``lat`` and ``lon`` into float64 columns in place; describe every bad value.

    A value is bad when it is text that is not a number (typically a second header or a summary footer row), a
    number outside :data:`COORD_BOUNDS`, or missing (unless ``allow_missing``).

    Returns:
        One ``"row 3 lat: 95.0 out of range [-90, 90] (line 5, id 'x')"``-style string per bad value, in row order.
    """
    problems: list[tuple[int, str]] = []
    not_data: set[int] = set()
    file_column = df.attrs.get("columns", {})  # pigeon name -> the file's column, after rename_columns
    for name in ("lat", "lon"):
        bound, column = COORD_BOUNDS[name], file_column.get(name, name)
        raw = df[name].astype(object)
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64).to_numpy()
        missing = raw.isna().to_numpy() | raw.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy()
        text = ~missing & ~np.isfinite(values) & raw.map(lambda v: isinstance(v, str)).to_numpy()
        out_of_range = ~missing & ~text & (~np.isfinite(values) | (np.abs(values) > bound))
        for row in np.flatnonzero(text):
            if row not in not_data:
                problems.append((row, f"row {row} is not data{row_context(df, row)}: {column}="
                                      f"{plain(raw.iat[row])!r} is not a number (a second header or a summary row? "
                                      "remove it)"))
            not_data.add(row)
        for row in np.flatnonzero(out_of_range):
            problems.append((row, f"row {row} {column}: {plain(raw.iat[row])!r} out of range "
                                  f"[-{bound:g}, {bound:g}]{row_context(df, row)}"))
        if not allow_missing:
            for row in np.flatnonzero(missing):
                problems.append((row, f"row {row} {column}: missing{row_context(df, row)}"))
        df[name] = values
    return [text for row, text in sorted(problems, key=lambda p: p[0]) if row not in not_data or "is not data" in text]


def check_table_coords(df: pd.DataFrame, where: str, allow_missing: bool = False) -> pd.DataFrame:
    """``lat``/``lon`` as float64 (in place), or one :class:`InputError` naming every bad value."""
    problems = coordinate_problems(df, allow_missing=allow_missing)
    if problems:
        raise InputError(f"{where}: {len(problems)} coordinate(s) not valid (lat in [-90, 90], lon in [-180, 180]): "
                         f"{listed(problems)}")
    return df


def parse_column_map(text: str | None, option: str = "--columns") -> dict[str, str]:
    """``"id=img_id,lat=predicted_lat"`` -> ``{"id": "img_id", "lat": "predicted_lat"}`` (pigeon name -> file's)."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    for item in text.split(","):
        ours, sep, theirs = (part.strip() for part in item.partition("="))
        if not sep or not ours or not theirs:
            raise InputError(f"{option} {text!r}: write NAME=COLUMN pairs separated by commas, "
                             "e.g. id=img_id,lat=predicted_lat,lon=predicted_long")
        if ours.lower() in mapping:
            raise InputError(f"{option} {text!r}: {ours!r} is mapped twice")
        mapping[ours.lower()] = theirs
    return mapping


def rename_columns(df: pd.DataFrame, mapping: dict[str, str], where: str, option: str = "--columns") -> pd.DataFrame:
    """Rename the file's columns to pigeon's names (``mapping`` from :func:`parse_column_map`).

    A pigeon-named column that the mapping replaces is dropped, so ``lat=pred_lat`` wins over a ``lat`` column.
    ``attrs["columns"]`` keeps the mapping, so messages name the file's columns.
    """
    if not mapping:
        return df
    missing = [f"{ours}={theirs}" for ours, theirs in mapping.items() if theirs not in df.columns]
    if missing:
        raise InputError(f"{where}: {option} names column(s) the file lacks ({', '.join(missing)}); "
                         f"it has {', '.join(map(str, df.columns)) or 'no columns'}")
    replaced = [c for c in df.columns if str(c).lower() in mapping and c not in mapping.values()]
    out = df.drop(columns=replaced).rename(columns={theirs: ours for ours, theirs in mapping.items()})
    out.attrs = {**df.attrs, "columns": {**df.attrs.get("columns", {}), **mapping}}
    return out
