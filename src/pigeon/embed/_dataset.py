"""``EmbeddingBatches``: a torch ``IterableDataset`` that streams a store's embeddings shard by shard.

For training a head on more embeddings than fit in memory: only a few shards are read at a time, and shards are
divided between distributed ranks and DataLoader workers, so each row is read by exactly one of them per epoch.

>>> ds = EmbeddingBatches("emb/", ids=train_ids, targets={"cell": labels}, batch_size=1024)
>>> for epoch in range(10):
...     ds.set_epoch(epoch)
...     for batch in DataLoader(ds, batch_size=None, num_workers=2):
...         loss = criterion(head(batch["x"]), batch["cell"])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from torch.utils.data import IterableDataset, get_worker_info

from pigeon.embed._store import Embeddings, _slice_rows
from pigeon.errors import InputError

_VIEWS = ("mean", "first")


class EmbeddingBatches(IterableDataset):
    """Shuffled batches of embeddings read a few shards at a time.

    Each item is a dict: ``"x"`` float32 ``(B, D)``, ``"index"`` int64 ``(B,)`` (positions in ``ids``, to look
    up anything else about the rows) and one tensor per ``targets`` entry. Load it with
    ``DataLoader(ds, batch_size=None, num_workers=W)``.

    Shuffling is two-level, like WebDataset's: the order of shards changes every epoch, and rows are shuffled
    within groups of ``shards_in_memory`` shards (peak memory: that many shards of float32 vectors).

    Args:
        embeddings: an :class:`Embeddings` store or its folder.
        ids: the rows to use (e.g. the training split); None: every row of the store.
        targets: arrays aligned with ``ids`` (labels, coordinates...), sliced into each batch.
        batch_size: rows per batch.
        shuffle: reshuffle every epoch (False: store order, for evaluation).
        seed: seed of the shuffles; with :meth:`set_epoch`, each epoch has its own order.
        shards_in_memory: shards mixed together before batching.
        views: ``"mean"`` (view-averaged) or ``"first"`` (the first view of each row).
        drop_last: drop each consumer's last, partial batch.
        even: every rank yields the same number of batches (needed by DDP; drops at most a few shards' worth of
            rows an epoch); default: True when ``world_size > 1``. It implies ``drop_last``.
        rank: this process's rank; default: ``torch.distributed``'s when initialised, else 0.
        world_size: number of ranks; default: ``torch.distributed``'s when initialised, else 1.
    """

    def __init__(self, embeddings: Embeddings | str | os.PathLike, ids: Iterable[str] | None = None,
                 targets: Mapping[str, np.ndarray] | None = None, batch_size: int = 1024, shuffle: bool = True,
                 seed: int = 0, shards_in_memory: int = 2, views: str = "mean", drop_last: bool = False,
                 even: bool | None = None, rank: int | None = None, world_size: int | None = None) -> None:
        super().__init__()
        self.embeddings = embeddings if isinstance(embeddings, Embeddings) else Embeddings.load(embeddings)
        if batch_size < 1 or shards_in_memory < 1:
            raise InputError(f"batch_size and shards_in_memory must be >= 1, got {batch_size} and {shards_in_memory}")
        if views not in _VIEWS:
            raise InputError(f"views must be one of {', '.join(_VIEWS)}, got {views!r}")
        index = self.embeddings._index
        if ids is None:
            store_row = np.arange(len(index))
        else:  # plain int arrays (24 bytes a row), not a copy of the index with its id strings
            ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
            store_row = self.embeddings._lookup.get_indexer(ids)
            if (store_row < 0).any():
                self.embeddings._rows([ids[i] for i in np.flatnonzero(store_row < 0)])  # raises the usual error
            if len(np.unique(store_row)) < len(store_row):
                first = next(i for i, n in pd.Series(ids).value_counts().items() if n > 1)
                raise InputError(f"ids must be unique; {first!r} is repeated")
        self.n_rows = len(store_row)
        if self.n_rows == 0:
            raise InputError("no rows to iterate: pass at least one id")
        self.targets = {name: np.asarray(value) for name, value in (targets or {}).items()}
        for name, value in self.targets.items():
            if len(value) != self.n_rows:
                raise InputError(f"target {name!r} has {len(value)} values for {self.n_rows} ids")
        self.key = "mean" if views == "mean" else "views"
        shard = index["shard"].to_numpy()[store_row]
        slot = index["offset" if views == "mean" else "view_offset"].to_numpy()[store_row]
        order = np.lexsort((slot, shard))  # positions in ids, sorted by shard then by place in the shard
        shard, slot = shard[order], slot[order]
        bounds = np.flatnonzero(np.diff(shard)) + 1
        self._shards = [int(s) for s in shard[np.r_[0, bounds]]]
        self._slots = np.split(slot, bounds)  # per shard: rows of its tensor
        self._positions = np.split(order, bounds)  # per shard: positions in ids
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.shards_in_memory, self.drop_last = shards_in_memory, drop_last
        self.rank, self.world_size, self.even = rank, world_size, even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of ``epoch`` (call before each epoch, like ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = self._rank_world()
        order = np.arange(len(self._shards))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        consumers = world * n_workers

        def assigned(r: int) -> np.ndarray:
            return order[r * n_workers + worker::consumers]

        mine = assigned(rank)
        even = world > 1 if self.even is None else self.even
        limit = None  # batches this consumer may yield
        if even:
            limit = min(sum(len(self._slots[k]) for k in assigned(r)) for r in range(world)) // self.batch_size
        rng = np.random.default_rng([self.seed, self.epoch, rank * n_workers + worker])
        carry_x = np.empty((0, self.embeddings.dim), np.float32)
        carry_pos = np.empty(0, np.int64)
        emitted = 0
        for lo in range(0, len(mine), self.shards_in_memory):
            group = mine[lo:lo + self.shards_in_memory]
            x = np.concatenate([carry_x, *(self._read(k) for k in group)])
            pos = np.concatenate([carry_pos, *(self._positions[k] for k in group)])
            if self.shuffle:
                perm = rng.permutation(len(pos))
                x, pos = x[perm], pos[perm]
            full = len(pos) // self.batch_size * self.batch_size
            for b in range(0, full, self.batch_size):
                if limit is not None and emitted >= limit:
                    return
                yield self._batch(x[b:b + self.batch_size], pos[b:b + self.batch_size])
                emitted += 1
            carry_x, carry_pos = x[full:], pos[full:]
        if len(carry_pos) and not (self.drop_last or even):
            yield self._batch(carry_x, carry_pos)

    def _rank_world(self) -> tuple[int, int]:
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        rank = self.rank if self.rank is not None else (dist.get_rank() if initialised else 0)
        world = self.world_size if self.world_size is not None else (dist.get_world_size() if initialised else 1)
        if not 0 <= rank < world:
            raise InputError(f"rank must be in [0, {world}), got {rank}")
        return rank, world

    def _read(self, k: int) -> np.ndarray:
        """The selected rows of shard number ``k`` (in the order of ``self._shards``), float32."""
        with safe_open(str(self.embeddings._shard(self._shards[k])), framework="numpy") as handle:
            return _slice_rows(handle, self.key, self._slots[k])

    def _batch(self, x: np.ndarray, pos: np.ndarray) -> dict[str, torch.Tensor]:
        out = {"x": torch.from_numpy(np.ascontiguousarray(x)), "index": torch.from_numpy(pos.astype(np.int64))}
        for name, value in self.targets.items():
            out[name] = torch.as_tensor(value[pos])
        return out
