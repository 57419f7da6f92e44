"""Reading the files an evaluation compares: pigeon's own, or another tool's with its own column names."""

from __future__ import annotations

import os

import pandas as pd

from pigeon._io import read_table
from pigeon.validation import parse_column_map, rename_columns


def read_predictions(path: str | os.PathLike, columns: str | dict[str, str] | None = None) -> pd.DataFrame:
    """A predictions file (``id, lat, lon`` [, ``rank``, ``prob``]), its columns renamed to pigeon's names.

    Args:
        path: CSV or Parquet.
        columns: ``"id=img_id,lat=predicted_lat,lon=predicted_long"`` (or the dict): pigeon's name = the
            file's column. Names not given keep their usual column (any case).

    Returns:
        The table; its rows are checked (every row that is not data is named) by
        :func:`pigeon.evaluate.match_predictions`.
    """
    mapping = parse_column_map(columns) if isinstance(columns, str) or columns is None else dict(columns)
    return rename_columns(read_table(path, "predictions file"), mapping, where=str(path))


def read_truth(path: str | os.PathLike, columns: str | dict[str, str] | None = None) -> pd.DataFrame:
    """The true locations: a manifest, or any table with ``id, lat, lon`` (renamed with ``columns``).

    A table with an ``image`` column is validated as a manifest (so ``view_lat``/``view_lon`` are parsed and
    ``attrs["root"]`` is set); without one only ``id, lat, lon`` (and ``split``) matter.
    """
    from pigeon.data import validate_manifest

    mapping = parse_column_map(columns, "--truth-columns") if isinstance(columns, str) or columns is None \
        else dict(columns)
    df = rename_columns(read_table(path, "truth file"), mapping, where=str(path), option="--truth-columns")
    if "image" in {str(c).lower() for c in df.columns}:
        df = validate_manifest(df, where=str(path))
    df.attrs["root"] = str(os.path.dirname(os.path.abspath(path)))
    return df
