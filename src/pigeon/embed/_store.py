"""The embedding store: float16 safetensors shards, a Parquet index and ``meta.json``.

Layout of an embeddings folder::

    meta.json             provenance, backbone name + cfg, dim, manifest hash, "complete"
    index.parquet         id, shard, offset, view_offset, n_views   (one row per embedded manifest row)
    failed.csv            id, view, image, error                    (images that could not be read)
    manifest.parquet      from tar shards only: id, lat, lon, image ("<shard url>#<member>"), the samples' fields
    shards/shard-00000.safetensors
                          "mean"  (n_rows, D) float16: view-averaged embedding per row
                          "views" (n_views, D) float16: one embedding per readable view
                          metadata: the shard's ids, views per id and failures (so a shard is self-contained)

A shard is renamed into place only when fully written, so a present shard is always complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import safe_open
from safetensors.numpy import save_file

from pigeon._io import atomic_path, read_json
from pigeon.backbones import BackboneCfg
from pigeon.errors import ArtifactNotFoundError, InputError

META, INDEX, FAILED, SHARDS, MANIFEST = "meta.json", "index.parquet", "failed.csv", "shards", "manifest.parquet"
FAILED_COLUMNS = ["id", "view", "image", "error"]
_SHOWN = 5



def pool_views(embeddings, owner=None, n: int | None = None):
    """The multi-view rule's pooling, written once: a location's embedding is the mean of its views' embeddings.

    Args:
        embeddings: (V, D) view embeddings, NumPy or torch (a torch mean is differentiable).
        owner: None when all V rows are one location's; else (V,) int64 tensor, the location of each row.
        n: with ``owner``, the number of locations.

    Returns:
        (D,) for one location, (n, D) with ``owner``.
    """
    if owner is None:
        return embeddings.mean(0)
    sums = embeddings.new_zeros(n, embeddings.shape[1]).index_add_(0, owner, embeddings)
    return sums / owner.bincount(minlength=n).clamp_min(1)[:, None]

def shard_path(root: str | os.PathLike, k: int) -> Path:
    """Path of shard number ``k``."""
    return Path(root) / SHARDS / f"shard-{k:05d}.safetensors"


def write_shard(path: Path, ids: Sequence[str], views: Sequence[np.ndarray], failed: list[list[Any]],
                dim: int, rows: list[dict[str, Any]] | None = None) -> None:
    """Write one shard atomically.

    Args:
        path: destination file.
        ids: the shard's manifest ids, in order.
        views: per id, the float32 embeddings of its readable views ``(V_i, D)`` (``V_i`` may be 0).
        failed: ``[id, view, image, error]`` rows for unreadable images.
        dim: embedding size D (for empty shards).
        rows: per id, its manifest fields (embedding from tar shards: the store then writes ``manifest.parquet``).
    """
    kept = [i for i, v in enumerate(views) if len(v)]
    mean = np.stack([pool_views(views[i]) for i in kept]) if kept else np.zeros((0, dim), np.float32)
    flat = np.concatenate([views[i] for i in kept]) if kept else np.zeros((0, dim), np.float32)
    metadata = {"ids": json.dumps([ids[i] for i in kept]), "n_views": json.dumps([len(views[i]) for i in kept]),
                "failed": json.dumps(failed)}
    if rows is not None:
        metadata["rows"] = json.dumps([rows[i] for i in kept], default=str)
    with atomic_path(path) as tmp:
        save_file({"mean": mean.astype(np.float16), "views": flat.astype(np.float16)}, str(tmp), metadata=metadata)


def read_shard_metadata(path: Path) -> dict[str, list]:
    """The ids, views per id and failures recorded in a shard."""
    with safe_open(str(path), framework="numpy") as f:
        return {k: json.loads(v) for k, v in f.metadata().items()}


class Embeddings:
    """Lazy, memory-mapped access to an embeddings folder made by :func:`pigeon.embed.embed_manifest`.

    Only the index is read on :meth:`load`; vectors are sliced from the memory-mapped shards on demand, so a
    store larger than RAM works.

    Attributes:
        root: the folder.
        meta: the parsed ``meta.json``.
    """

    def __init__(self, root: str | os.PathLike, meta: dict[str, Any], index: pd.DataFrame) -> None:
        self.root = Path(root)
        self.meta = meta
        self._index = index
        self._lookup = pd.Index(index["id"])
        self._handles: dict[int, Any] = {}

    @classmethod
    def load(cls, root: str | os.PathLike) -> Embeddings:
        """Open an embeddings folder (reads ``meta.json`` and the index only)."""
        root = Path(root)
        meta = read_json(root / META, hint=f"make it with 'pigeon embed MANIFEST -o {root}'")
        if meta.get("kind") != "embeddings":
            raise InputError(f"{root} is not an embeddings folder (meta.json kind={meta.get('kind')!r}); "
                             "pass the folder written by 'pigeon embed'")
        if not meta.get("complete"):
            raise InputError(f"{root} is incomplete (embedding stopped half way); rerun the same 'pigeon embed' "
                             "command to finish it")
        if not (root / INDEX).is_file():
            raise ArtifactNotFoundError(root / INDEX, "the store is damaged; rerun 'pigeon embed' with --overwrite")
        return cls(root, meta, pd.read_parquet(root / INDEX))

    @property
    def ids(self) -> np.ndarray:
        """Ids of the embedded rows (object array of str), in manifest order."""
        return self._index["id"].to_numpy()

    @property
    def dim(self) -> int:
        """Embedding size D."""
        return int(self.meta["dim"])

    @property
    def backbone(self) -> str:
        """Registry name of the backbone that made the store."""
        return self.meta["config"]["backbone"]

    @property
    def cfg(self) -> BackboneCfg:
        """The backbone's configuration (preprocessing included)."""
        return BackboneCfg.from_dict(self.meta["config"]["backbone_cfg"])

    @property
    def n_views(self) -> np.ndarray:
        """Readable views per row, int ``(N,)``."""
        return self._index["n_views"].to_numpy()

    @property
    def failed(self) -> pd.DataFrame:
        """Images that could not be embedded (columns id, view, image, error)."""
        path = self.root / FAILED
        return pd.read_csv(path, dtype={"id": str}) if path.is_file() else pd.DataFrame(columns=FAILED_COLUMNS)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._lookup

    def __repr__(self) -> str:
        return f"Embeddings({str(self.root)!r}, n={len(self)}, dim={self.dim}, backbone={self.backbone!r})"

    def get(self, ids: str | Iterable[str]) -> np.ndarray:
        """View-averaged embeddings, float32 ``(N, D)``, in the order of ``ids``."""
        rows = self._rows(ids)
        out = np.empty((len(rows), self.dim), np.float32)
        for shard, group in rows.groupby("shard", sort=False):
            out[group["pos"].to_numpy()] = self._read(int(shard), "mean", group["offset"].to_numpy())
        return out

    def get_views(self, ids: str | Iterable[str]) -> list[np.ndarray]:
        """Per-view embeddings: one float32 ``(V_i, D)`` array per id (unreadable views left out)."""
        rows = self._rows(ids)
        out: list[np.ndarray] = [np.empty((0, self.dim), np.float32)] * len(rows)
        for shard, group in rows.groupby("shard", sort=False):
            starts, counts = group["view_offset"].to_numpy(), group["n_views"].to_numpy()
            flat_rows = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)])
            block = self._read(int(shard), "views", flat_rows)
            for pos, piece in zip(group["pos"], np.split(block, np.cumsum(counts)[:-1])):
                out[pos] = piece
        return out

    def iter_batches(self, ids: Iterable[str] | None = None, batch_size: int = 65_536
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, float32 (B, D))`` batches of view-averaged embeddings, one shard open at a time.

        Memory stays at one batch whatever the size of the store (no shard stays mapped after its batches).

        Args:
            ids: the rows to read, in this order; None: every row of the store in store order, shard by shard
                (batches then never span two shards, so some are shorter).
            batch_size: rows per batch.
        """
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if ids is not None:
            ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
            for lo in range(0, len(ids), batch_size):
                chunk = ids[lo:lo + batch_size]
                vectors = self.get(chunk)
                self._handles.clear()  # unmap the shards this batch touched
                yield np.asarray(chunk, dtype=object), vectors
            return
        for shard, group in self._index.groupby("shard", sort=True):
            offsets, shard_ids = group["offset"].to_numpy(), group["id"].to_numpy()
            with safe_open(str(self._shard(int(shard))), framework="numpy") as handle:
                for lo in range(0, len(offsets), batch_size):
                    yield shard_ids[lo:lo + batch_size], _slice_rows(handle, "mean", offsets[lo:lo + batch_size])

    def _rows(self, ids: str | Iterable[str]) -> pd.DataFrame:
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        pos = self._lookup.get_indexer(ids)
        missing = [i for i, p in zip(ids, pos) if p < 0]
        if missing:
            shown = ", ".join(map(repr, missing[:_SHOWN])) + (", ..." if len(missing) > _SHOWN else "")
            raise InputError(f"{len(missing)} id(s) have no embedding in {self.root} ({shown}); the manifest and "
                             "the embeddings do not match (or the images failed, see failed.csv): "
                             "rerun 'pigeon embed' on this manifest")
        rows = self._index.iloc[pos].reset_index(drop=True)
        rows["pos"] = np.arange(len(rows))
        return rows

    def _read(self, shard: int, key: str, rows: np.ndarray) -> np.ndarray:
        """Rows of one shard tensor as float32, reading only the span they cover."""
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self._shard(shard)), framework="numpy")
        return _slice_rows(self._handles[shard], key, rows)

    def _shard(self, shard: int) -> Path:
        """Path of an existing shard file (a clear error when it is gone)."""
        path = shard_path(self.root, shard)
        if not path.is_file():
            raise ArtifactNotFoundError(path, "the store is damaged; rerun 'pigeon embed' with --overwrite")
        return path

    def __getstate__(self) -> dict[str, Any]:  # open shard handles cannot be pickled (DataLoader workers)
        return {**self.__dict__, "_handles": {}}


def _slice_rows(handle: Any, key: str, rows: np.ndarray) -> np.ndarray:
    """Rows of one tensor of an open shard as float32, reading only the span they cover."""
    lo, hi = int(rows.min()), int(rows.max()) + 1
    return handle.get_slice(key)[lo:hi][rows - lo].astype(np.float32)
