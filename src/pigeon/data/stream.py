"""Streamed manifests: read a manifest larger than memory batch by batch.

Parquet manifests are read by record batches of their row groups and only the columns asked for; CSV manifests
by chunks. Every batch is validated like :func:`pigeon.data.read_manifest` (ids unique *within* a batch: a
duplicate across batches is not detected, since that would need every id in memory).

>>> for batch in iter_manifest("osv5m.parquet", batch_rows=65_536, split="test"):
...     predict(batch)
>>> points = read_points("osv5m.parquet", split="train")     # lat, lon float64 + split: 17 bytes a point
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pigeon.data.manifest import REQUIRED_COLUMNS, SPLITS, select_split, validate_manifest
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.geo import check_coords

#: default rows per batch: about 10 MB of a typical manifest
DEFAULT_BATCH_ROWS = 65_536
_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".txt")


def manifest_rows(path: str | os.PathLike) -> int:
    """Number of rows of a manifest (from the Parquet footer, or by counting CSV lines in chunks)."""
    path = _checked(path)
    if path.suffix.lower() in _PARQUET:
        return _parquet(path).metadata.num_rows
    return sum(len(chunk) for chunk in _raw_batches(path, DEFAULT_BATCH_ROWS, columns=None))


def iter_manifest(path: str | os.PathLike, batch_rows: int = DEFAULT_BATCH_ROWS, columns: list[str] | None = None,
                  split: str | None = None, require_coords: bool = True) -> Iterator[pd.DataFrame]:
    """Validated manifest batches of at most ``batch_rows`` rows, in file order.

    Args:
        path: a ``.parquet`` or ``.csv`` manifest.
        batch_rows: rows per batch (Parquet batches never span row groups, so some may be shorter).
        columns: extra columns to read besides ``id``, ``image``, ``lat``, ``lon`` (and ``split``); None: all.
        split: keep only rows of this split (batches left empty are skipped).
        require_coords: as in :func:`pigeon.data.read_manifest`.

    Yields:
        DataFrames like :func:`pigeon.data.read_manifest`'s (``attrs["root"]`` set), with a RangeIndex that
        continues across batches (the row number in the file).
    """
    path = _checked(path)
    if batch_rows < 1:
        raise InputError(f"batch_rows must be >= 1, got {batch_rows}")
    wanted = None
    if columns is not None:
        present = {c.lower(): c for c in _column_names(path)}
        base = [c for c in (*REQUIRED_COLUMNS, "split") if c in present]
        unknown = [c for c in columns if c.lower() not in present]
        if unknown:
            raise InputError(f"{path}: no column(s) {', '.join(unknown)}; it has {', '.join(present.values())}")
        wanted = list(dict.fromkeys(present[c.lower()] for c in (*base, *columns)))
    root, start, seen = str(path.resolve().parent), 0, False
    for raw in _raw_batches(path, batch_rows, wanted):
        stop = start + len(raw)
        raw.index = pd.RangeIndex(start, stop)
        batch = validate_manifest(raw, where=f"{path} rows {start}-{stop - 1} ('row N' counts from row {start})",
                                  require_coords=require_coords)
        start = stop
        batch = select_split(batch, split, where=str(path), empty_ok=True)
        if len(batch):
            seen = True
            batch.attrs["root"] = root
            yield batch
    if start == 0:
        raise InputError(f"{path}: the manifest is empty; add at least one row")
    if not seen:
        raise InputError(f"{path} has no rows with split={split!r}")


def read_points(path: str | os.PathLike, split: str | None = None,
                batch_rows: int = DEFAULT_BATCH_ROWS) -> pd.DataFrame:
    """Only the coordinates (and split) of a manifest, read in batches: what a geocell build needs.

    A point costs 17 bytes (two float64 and a one-byte split code; twice that while the batches are joined), so
    5M points take 85 MB and 100M points 1.7 GB, whatever the size of the rest of the manifest.

    Args:
        path: a ``.parquet`` or ``.csv`` manifest with ``lat`` and ``lon``.
        split: keep only rows of this split (None: all rows).
        batch_rows: rows read at a time.

    Returns:
        DataFrame with ``lat``, ``lon`` (float64) and, when the manifest has one, ``split`` (categorical).
    """
    path = _checked(path)
    present = {c.lower(): c for c in _column_names(path)}
    missing = [c for c in ("lat", "lon") if c not in present]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; geocells need lat and lon "
                         f"(has {', '.join(present.values())})")
    if split is not None and "split" not in present:
        raise InputError(f"{path} has no 'split' column, so split={split!r} cannot be selected")
    columns = [present[c] for c in ("lat", "lon", "split") if c in present]
    split_type = pd.CategoricalDtype(list(SPLITS))
    lats, lons, codes, start = [], [], [], 0
    for raw in _raw_batches(path, batch_rows, columns):
        where = f"{path} rows {start}-{start + len(raw) - 1} ('row N' counts from row {start})"
        lat, lon = check_coords(pd.to_numeric(raw[present["lat"]], errors="coerce"),
                                pd.to_numeric(raw[present["lon"]], errors="coerce"), where=where)
        keep = slice(None)
        if "split" in present:
            values = raw[present["split"]]
            bad = ~values.isin(SPLITS) & values.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(f"{where}: row {row} split: {values.iat[row]!r} is not one of {'/'.join(SPLITS)}")
            code = pd.Categorical(values, dtype=split_type).codes
            if split is not None:
                keep = code == SPLITS.index(split)
            codes.append(code[keep])
        lats.append(lat[keep])
        lons.append(lon[keep])
        start += len(raw)
    if start == 0:
        raise InputError(f"{path}: the manifest is empty; add at least one row")
    columns = {"lat": np.concatenate(lats), "lon": np.concatenate(lons)}
    del lats, lons
    if codes:
        columns["split"] = pd.Categorical.from_codes(np.concatenate(codes), dtype=split_type)
    out = pd.DataFrame(columns, copy=False)  # no third copy of the points
    if split is not None and len(out) == 0:
        raise InputError(f"{path} has no rows with split={split!r}")
    return out


def _checked(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(path, "pass an existing manifest (.parquet or .csv)")
    if path.suffix.lower() not in _PARQUET + _CSV:
        raise InputError(f"{path}: unsupported manifest format {path.suffix!r}; use .parquet or .csv")
    return path


def _parquet(path: Path) -> pq.ParquetFile:
    try:  # pre_buffer would read ahead every row group's column chunks: memory growing with the file
        return pq.ParquetFile(path, pre_buffer=False)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"cannot read manifest {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def _column_names(path: Path) -> list[str]:
    if path.suffix.lower() in _PARQUET:
        return list(_parquet(path).schema_arrow.names)
    return list(next(_raw_batches(path, 1, None), pd.DataFrame()).columns)


def _raw_batches(path: Path, batch_rows: int, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    """Unvalidated batches of the file; a read error becomes one :class:`InputError` line."""
    try:
        if path.suffix.lower() in _PARQUET:
            for record_batch in _parquet(path).iter_batches(batch_size=batch_rows, columns=columns):
                if record_batch.num_rows:
                    yield record_batch.to_pandas()
        else:
            with pd.read_csv(path, dtype={"id": str}, usecols=columns, chunksize=batch_rows) as reader:
                yield from reader
    except InputError:
        raise
    except Exception as exc:  # pyarrow / pandas raise many types for corrupt files
        raise InputError(f"cannot read manifest {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
