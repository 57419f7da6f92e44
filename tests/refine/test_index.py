"""FAISS indexes for large galleries: built batch by batch from an array or an embeddings store (the same index),
memory-mapped when read back (the same results), IVF-PQ recall against exact search, the auto rule, the CLI."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pandas as pd
import pytest

from pigeon.errors import InputError
from pigeon.refine import RefineConfig, Refiner, build_index, read_index, recall_at_1, write_index
from pigeon.refine._index import is_lossy, is_memory_mapped, search
from pigeon.refine._search import prepare
from tests.support import write_store


@pytest.fixture(autouse=True)
def faiss_one_thread():
    """One FAISS thread: on the shared 2-core machine OpenMP threads spin against other jobs, ~20x slower."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def clustered(n: int, dim: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Clustered vectors with a low intrinsic dimension (8), like image embeddings: the nearest neighbour is
    well defined, and coarse codes confuse it."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 8)))[0]
    centres = rng.normal(0, 1, (clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + rng.normal(0, 0.6, (n, 8)) @ basis.T + rng.normal(0, 0.05, (n, dim))
    return x.astype(np.float32)


def test_building_from_store_shards_equals_building_from_the_array(tmp_path):
    X = clustered(3000)
    emb = write_store(tmp_path / "emb", [f"g{i}" for i in range(len(X))], X, shard_size=256)
    for metric in ("euclidean", "cosine"):
        array = prepare(emb.get(emb.ids), metric)  # the store's float16 values, as one array
        a = build_index(array, metric, "IVF16,PQ8", 4, train_size=1000, seed=3)
        b = build_index(emb, metric, "IVF16,PQ8", 4, train_size=1000, seed=3)  # shard by shard, never all loaded
        assert faiss.serialize_index(a).tobytes() == faiss.serialize_index(b).tobytes()  # the same trained index
        other = build_index(array, metric, "IVF16,PQ8", 4, train_size=1000, seed=4)
        assert faiss.serialize_index(other).tobytes() != faiss.serialize_index(a).tobytes()  # the seed matters
    # a subset of the store, in the order asked for
    ids = [f"g{i}" for i in range(2999, -1, -3)]
    c = build_index(emb, "euclidean", "IVF8,Flat", 8, ids=ids, seed=1)
    d = build_index(prepare(emb.get(ids), "euclidean"), "euclidean", "IVF8,Flat", 8, seed=1)
    assert faiss.serialize_index(c).tobytes() == faiss.serialize_index(d).tobytes()


@pytest.mark.parametrize("factory", ["IVF16,PQ8", "IVF16,Flat", "HNSW16", "Flat"])
def test_saved_indexes_are_memory_mapped_with_the_same_results(tmp_path, factory):
    X = clustered(2000, seed=1)
    index = build_index(X, "euclidean", factory, 4)
    path = write_index(index, tmp_path / "g.faiss")
    loaded = read_index(path, nprobe=4)
    if factory.startswith("IVF"):  # the inverted lists stay on disk, paged in on use
        assert is_memory_mapped(loaded) and not is_memory_mapped(index)
    Q = clustered(100, seed=2)
    for exact, rerank in ((None, 0), (X, 20)):
        before, after = search(index, Q, 5, "euclidean", exact=exact, rerank=rerank), \
            search(loaded, Q, 5, "euclidean", exact=exact, rerank=rerank)
        np.testing.assert_array_equal(after[1], before[1])
        np.testing.assert_array_equal(after[0], before[0])
    assert is_lossy(index) == ("PQ" in factory)
    (tmp_path / "bad.faiss").write_bytes(b"not an index")
    with pytest.raises(InputError, match="not a readable FAISS index"):
        read_index(tmp_path / "bad.faiss")


def test_ivf_pq_recall_against_exact_search(tmp_path):
    X = clustered(4000, seed=5)
    index = build_index(X, "euclidean", "IVF16,PQ8", 8)  # 8 bytes a 32-d vector: 16x smaller than float32
    plain = recall_at_1(index, X, "euclidean", queries=400)
    reranked = recall_at_1(index, X, "euclidean", queries=400, exact=X, rerank=32)
    assert reranked >= 0.95 and plain < reranked  # PQ alone misses neighbours; exact re-scoring finds them
    assert recall_at_1(build_index(X, "euclidean", "Flat", 1), X, "euclidean", queries=400) == 1.0
    # re-ranked scores are the exact ones
    Q = X[:50] + 0.01
    scores, ids = search(index, Q, 3, "euclidean", exact=X, rerank=32)
    np.testing.assert_allclose(scores, -np.linalg.norm(Q[:, None] - X[ids], axis=2), rtol=1e-4, atol=1e-4)


def test_auto_rule_and_settings():
    config = RefineConfig()
    assert config.index_type(150_000, 1024) == "Flat"
    assert config.index_type(600_000, 1024) == "IVF3098,Flat"
    assert config.index_type(5_000_000, 1024) == "IVF8944,PQ64"  # 64-byte codes: 320 MB for 5M vectors
    assert config.index_type(5_000_000, 1280).endswith(",PQ80") and config.index_type(5_000_000, 768).endswith(",PQ48")
    assert RefineConfig(index="HNSW32").index_type(10, 8) == "HNSW32"
    with pytest.raises(InputError, match="rerank"):
        RefineConfig(rerank=-1).validate()


def test_refiner_with_ivf_pq_reports_recall_and_maps_its_indexes(tmp_path):
    rng = np.random.default_rng(0)
    X = clustered(3000, seed=7)
    coords = np.column_stack([rng.uniform(-60, 60, len(X)), rng.uniform(-170, 170, len(X))])
    cells = rng.integers(0, 10, len(X))
    config = RefineConfig(min_samples=5, search="index", index="IVF16,PQ8", nprobe=8, rerank=32)
    ref = Refiner.build(X, coords, cells, 10, config, show_progress=False)
    report = ref.meta["indexes"]["gallery"]
    assert report["factory"] == "IVF16,PQ8" and report["lossy"] and report["recall_at_1"] >= 0.9
    root = ref.save(tmp_path / "r")
    again = Refiner.load(root)
    assert json.loads((root / "meta.json").read_text())["indexes"]["clusters"]["recall_at_1"] > 0.5
    rows, _ = again.nearest(X[:40], 1)
    assert is_memory_mapped(again.index("gallery")) and is_memory_mapped(again.index("clusters"))
    np.testing.assert_array_equal(rows, ref.nearest(X[:40], 1)[0])
    itself = pd.Index(ref.gallery["id"]).get_indexer([str(i) for i in range(40)])
    assert (rows[:, 0] == itself).mean() >= 0.95  # each query finds its own gallery row
