"""Streamed embeddings: ``Embeddings.iter_batches`` and the ``EmbeddingBatches`` dataset equal in-memory reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pigeon.embed import EmbeddingBatches, embed_manifest
from pigeon.errors import InputError


@pytest.fixture
def store(tiny_clip, photos, tmp_path):
    """11 rows in shards of 3 (the last has 2); every third row has 3 views."""
    return embed_manifest(photos(11), tiny_clip, tmp_path / "emb", batch_size=4, num_workers=0, shard_size=3)


def _stack(batches):
    return np.concatenate([b["index"].numpy() for b in batches]), torch.cat([b["x"] for b in batches]).numpy()


def test_iter_batches_equals_get(store):
    batches = list(store.iter_batches(batch_size=2))
    assert [len(ids) for ids, _ in batches] == [2, 1, 2, 1, 2, 1, 2]  # never across a shard
    ids = np.concatenate([ids for ids, _ in batches])
    assert ids.tolist() == store.ids.tolist()
    np.testing.assert_array_equal(np.concatenate([x for _, x in batches]), store.get(store.ids))
    wanted = ["loc9", "loc0", "loc4", "loc10", "loc3"]
    expected = store.get(wanted)
    store._handles.clear()
    got = list(store.iter_batches(wanted, batch_size=2))
    assert not store._handles  # nothing left mapped
    assert [i for ids, _ in got for i in ids] == wanted
    np.testing.assert_array_equal(np.concatenate([x for _, x in got]), expected)
    with pytest.raises(InputError, match="no embedding"):
        list(store.iter_batches(["nope"]))


def test_dataset_in_order_equals_in_memory(store):
    ids = ["loc7", "loc1", "loc2", "loc10", "loc5"]
    labels = np.array([70, 10, 20, 100, 50])
    ds = EmbeddingBatches(store, ids=ids, targets={"cell": labels}, batch_size=2, shuffle=False)
    batches = list(ds)
    index, x = _stack(batches)
    assert [ids[i] for i in index] == ["loc1", "loc2", "loc5", "loc7", "loc10"]  # store order
    np.testing.assert_array_equal(x, store.get([ids[i] for i in index]))
    assert torch.cat([b["cell"] for b in batches]).tolist() == labels[index].tolist()
    assert [len(b["index"]) for b in batches] == [2, 2, 1]
    first = EmbeddingBatches(store, ids=ids, batch_size=8, shuffle=False, views="first")
    [batch] = list(first)
    np.testing.assert_array_equal(batch["x"].numpy(), np.stack([v[0] for v in store.get_views([ids[i] for i in
                                                                                                 batch["index"]])]))


def test_dataset_shuffles_per_epoch_and_covers_every_row_once(store):
    ds = EmbeddingBatches(store, batch_size=4, seed=3, shards_in_memory=2)
    epoch0 = _stack(list(ds))
    assert sorted(epoch0[0]) == list(range(11))
    np.testing.assert_array_equal(epoch0[1], store.get(store.ids[epoch0[0]]))
    assert _stack(list(ds))[0].tolist() == epoch0[0].tolist()  # same epoch, same order
    ds.set_epoch(1)
    epoch1 = _stack(list(ds))[0]
    assert sorted(epoch1) == list(range(11)) and epoch1.tolist() != epoch0[0].tolist()
    assert epoch0[0].tolist() != sorted(epoch0[0])


def test_ranks_and_workers_share_the_shards(store):
    def run(rank, even):
        ds = EmbeddingBatches(store, batch_size=2, rank=rank, world_size=2, even=even, seed=1)
        return list(DataLoader(ds, batch_size=None, num_workers=2))

    uneven = [_stack(run(r, even=False))[0] for r in (0, 1)]
    assert sorted(np.concatenate(uneven)) == list(range(11))  # every row exactly once over 2 ranks x 2 workers
    even = [run(r, even=True) for r in (0, 1)]
    assert len(even[0]) == len(even[1]) > 0  # DDP needs the same number of steps on every rank
    assert all(len(b["index"]) == 2 for batches in even for b in batches)
    seen = np.concatenate([_stack(batches)[0] for batches in even])
    assert len(set(seen)) == len(seen)


def test_dataset_errors(store):
    with pytest.raises(InputError, match="no embedding"):
        EmbeddingBatches(store, ids=["loc0", "gone"])
    with pytest.raises(InputError, match="target 'cell' has 1 values for 2 ids"):
        EmbeddingBatches(store, ids=["loc0", "loc1"], targets={"cell": [1]})
    with pytest.raises(InputError, match="repeated"):
        EmbeddingBatches(store, ids=["loc0", "loc0"])
    with pytest.raises(InputError, match="views must be one of"):
        EmbeddingBatches(store, views="all")
    with pytest.raises(InputError, match="rank must be in"):
        list(EmbeddingBatches(store, rank=2, world_size=2))
    assert len(EmbeddingBatches(store.root).embeddings) == 11  # a folder works too
