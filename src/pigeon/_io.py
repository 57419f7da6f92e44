"""Atomic file output, JSON artefacts and the provenance every artefact records."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pigeon.errors import ArtifactNotFoundError, InputError

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
