"""Batch samplers: seeded per epoch and sharded over ranks, like ``torch.utils.data.DistributedSampler``.

A sampler yields index arrays (one per micro-batch of this rank) and has ``set_epoch(epoch)`` and ``len``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pigeon.errors import InputError


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


class ShuffleSampler:
    """A fresh permutation of ``range(n)`` every epoch, cut into batches of ``batch_size`` per rank.

    With ``world_size`` ranks each global batch of ``batch_size * world_size`` rows is split between them. The last
    global batch is smaller unless ``drop_last``; it is shared out so that every rank gets the same number of
    batches, and when it has fewer rows than there are ranks it is filled up with the epoch's first rows, so that
    no rank gets an empty batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, *, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False) -> None:
        if n < world_size:
            raise InputError(f"cannot share {n} rows between {world_size} processes")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        per_step = self.batch_size * self.world_size
        return self.n // per_step if self.drop_last else -(-self.n // per_step)

    def __iter__(self) -> Iterator[np.ndarray]:
        order = _epoch_rng(self.seed, self.epoch).permutation(self.n)
        per_step = self.batch_size * self.world_size
        for i in range(len(self)):
            chunk = order[i * per_step:(i + 1) * per_step]
            if len(chunk) < self.world_size:
                chunk = np.concatenate([chunk, order[:self.world_size - len(chunk)]])
            yield np.array_split(chunk, self.world_size)[self.rank]


class LocationBatchSampler:
    """Batches in which no two samples share a location (or multi-view group), for contrastive training.

    Each epoch, every group's members are shuffled and dealt into *rounds*: round ``r`` holds the ``r``-th member of
    every group that has one, in a fresh random order. Global batches of ``batch_size * world_size`` samples are cut
    from within a round, so every global batch (all ranks together) has distinct groups; rank ``k`` takes the
    ``k``-th slice of each. The batches of all rounds are then shuffled. An incomplete global batch at the end of a
    round is dropped (at most ``batch_size * world_size - 1`` samples a round).

    Args:
        groups: (N,) group id of each sample (e.g. the location of each view).
        batch_size: samples per micro-batch on one rank.
        seed: seeds every epoch's draw together with the epoch.
        rank, world_size: this process's share.
    """

    def __init__(self, groups, batch_size: int, seed: int = 0, *, rank: int = 0, world_size: int = 1) -> None:
        _, self.groups = np.unique(np.asarray(groups), return_inverse=True)
        n_groups = int(self.groups.max()) + 1 if len(self.groups) else 0
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size * world_size > n_groups:
            across = f" x {world_size} processes" if world_size > 1 else ""
            raise InputError(f"batch size {batch_size}{across} is larger than the {n_groups} distinct locations; "
                             "a contrastive batch holds each location at most once: lower --batch-size")
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.epoch = 0
        counts = np.bincount(self.groups)
        # round r holds every group with more than r members
        self._round_sizes = np.array([(counts > r).sum() for r in range(counts.max())])
        self._members = np.argsort(self.groups, kind="stable")
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._counts = counts

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int((self._round_sizes // (self.batch_size * self.world_size)).sum())

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = _epoch_rng(self.seed, self.epoch)
        # shuffle each group's members: a random key per sample, sorted within its group
        keys = rng.random(len(self.groups))
        members = self._members[np.lexsort((keys[self._members], self.groups[self._members]))]
        per_step = self.batch_size * self.world_size
        batches = []
        for r, size in enumerate(self._round_sizes):
            present = np.flatnonzero(self._counts > r)
            samples = members[self._starts[present] + r][rng.permutation(len(present))]
            for b in range(size // per_step):
                chunk = samples[b * per_step:(b + 1) * per_step]
                batches.append(chunk[self.rank * self.batch_size:(self.rank + 1) * self.batch_size])
        for i in rng.permutation(len(batches)):
            yield batches[i]
