"""Atomic file output, JSON artefacts, tables (Parquet / CSV) and the provenance every artefact records."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeon.errors import ArtifactNotFoundError, InputError

if TYPE_CHECKING:
    import pandas as pd

_TRACKED_PACKAGES = (
    "pigeon-geo", "numpy", "pandas", "torch", "transformers", "shapely",
    "geopandas", "scikit-learn", "safetensors", "pillow",
)


_UMASK = os.umask(0)  # read once (umask can only be read by setting it), then restored
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Readers never see a half-written file: on an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give the artefact the usual umask-based mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike, hint: str = "") -> Any:
    """Read a JSON artefact, with a clear error when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(path, hint)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); rebuild it") from None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape an artefact."""
    from importlib import metadata  # here: 0.1 s that the CLI's help does not need

    out = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The ``meta.json`` block every artefact carries: what it is, how and when it was made."""
    return {
        "kind": kind,
        "config": config,
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def read_tensors(path: str | os.PathLike, hint: str = "rebuild it") -> dict[str, Any]:
    """Every tensor of a safetensors file as torch tensors, with a one-line error when it is missing or damaged
    (``hint``: how to make it again)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(path, hint)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable safetensors file ({str(exc).splitlines()[0][:100]}); "
                         f"{hint}") from None


def mmap_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """Memory-map every tensor of a safetensors file as a read-only NumPy array (nothing is read up front).

    ``safetensors.safe_open`` only slices contiguous ranges; a memory map also gathers arbitrary rows, which is
    what a retrieval gallery needs.
    """
    import numpy as np

    dtypes = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
              "U8": np.uint8, "BF16": None}
    path = Path(path)
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= path.stat().st_size - 8:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable safetensors file ({exc}); rebuild it") from None
    out: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = dtypes.get(info.get("dtype"))
        if dtype is None:
            raise InputError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}; rebuild it")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize or 8 + n + end > path.stat().st_size:
            raise InputError(f"{path}: tensor {name!r} is truncated; the file is damaged, rebuild it")
        out[name] = (np.memmap(path, dtype=dtype, mode="r", offset=8 + n + begin, shape=shape) if end > begin
                     else np.zeros(shape, dtype))
    return out


#: Table suffixes pigeon reads and writes.
PARQUET_SUFFIXES, CSV_SUFFIXES = (".parquet", ".pq"), (".csv", ".txt")
_META_KEY = b"pigeon"  # Parquet key-value metadata key of a table's pigeon metadata


def table_meta_path(path: str | os.PathLike) -> Path:
    """Where the metadata of a CSV table lives: ``table.csv`` -> ``table.csv.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def read_table(path: str | os.PathLike, what: str = "table") -> pd.DataFrame:
    """Read a Parquet or CSV file, with one-line errors for missing or unreadable files.

    ``id`` columns of CSV files stay strings. The table's pigeon metadata (written by :func:`write_table`: in the
    Parquet file, or beside a CSV file) is in ``df.attrs["meta"]`` (``{}`` when there is none), and
    ``df.attrs["source"]`` is ``{"path": str, "format": "parquet" | "csv"}``.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(path, f"pass an existing {what} (.parquet or .csv)")
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise InputError(f"{path}: unsupported {what} format {path.suffix!r}; use .parquet or .csv")
    meta: dict = {}
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            df = table.to_pandas()
            raw = (table.schema.metadata or {}).get(_META_KEY)
            meta = json.loads(raw) if raw else {}
        else:
            df = pd.read_csv(path, dtype={"id": str})
    except Exception as exc:  # pyarrow / pandas raise many types for corrupt files
        raise InputError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if suffix in CSV_SUFFIXES and table_meta_path(path).is_file():
        meta = read_json(table_meta_path(path))
    df.attrs = {"meta": meta, "source": {"path": str(path), "format": "csv" if suffix in CSV_SUFFIXES else "parquet"}}
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write a table as Parquet or CSV (by suffix), atomically. List cells become JSON arrays in CSV.

    Args:
        df: the table (its ``attrs`` are not written).
        path: ``.parquet`` or ``.csv``.
        meta: JSON-able metadata kept with the table (Parquet key-value metadata; for CSV a
            :func:`table_meta_path` file beside it) and read back into ``attrs["meta"]`` by :func:`read_table`.
    """
    write_table_batches([df], path, meta)
    return Path(path)


def write_table_batches(batches: Iterable[pd.DataFrame], path: str | os.PathLike, meta: dict | None = None) -> int:
    """Write a table that arrives in batches (same columns) as one Parquet or CSV file, atomically.

    Only one batch is in memory at a time: Parquet gets one row group per batch, CSV one header. Nothing is left
    at ``path`` when the iterator raises. The Parquet schema is the first batch's, with columns that are all
    missing there typed as strings. Returns the number of rows written.
    """
    import numpy as np

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InputError(f"{path}: unsupported output format {path.suffix!r}; use .parquet or .csv")
    is_list = lambda v: isinstance(v, (list, tuple, np.ndarray))  # noqa: E731
    n_rows, writer = 0, None
    with atomic_path(path) as tmp, contextlib.ExitStack() as stack:
        for df in batches:
            out = df.copy()
            out.attrs = {}
            if suffix == ".csv":
                for col in out.columns:
                    if out[col].map(is_list).any():
                        out[col] = out[col].map(lambda v: json.dumps(np.asarray(v).tolist()) if is_list(v) else v)
                out.to_csv(tmp, index=False, mode="a" if writer else "w", header=not writer)
                writer = True
            else:
                writer = writer or stack.enter_context(_parquet_writer(tmp, out, meta))
                writer(out)
            n_rows += len(out)
        if writer is None:
            raise InputError(f"{path}: nothing to write (no batches)")
    if suffix == ".csv":
        if meta:
            write_json(table_meta_path(path), meta)
        else:
            table_meta_path(path).unlink(missing_ok=True)
    return n_rows


@contextlib.contextmanager
def _parquet_writer(path: Path, first: pd.DataFrame, meta: dict | None) -> Iterator[Callable[[pd.DataFrame], None]]:
    """``write(df)`` appending DataFrames to one Parquet file under the first one's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.Schema.from_pandas(first, preserve_index=False)
    for i, f in enumerate(schema):
        if pa.types.is_null(f.type):
            schema = schema.set(i, pa.field(f.name, pa.string()))
    if meta:
        schema = schema.with_metadata({**(schema.metadata or {}),
                                       _META_KEY: json.dumps(meta, default=_json_default).encode()})
    with pq.ParquetWriter(path, schema) as writer:
        yield lambda df: writer.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False))
