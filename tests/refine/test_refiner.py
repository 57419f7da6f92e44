"""The refiner: nearest member, batched = per-query reference, empty cells, temperature, move limit, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from pigeon.errors import InputError, PigeonError
from pigeon.geo import haversine_km
from pigeon.refine import RefineConfig, Refiner
from pigeon.refine._search import CHUNK_ELEMENTS


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_refinement_returns_the_nearest_member_not_the_farthest():
    # one cell, one cluster of three members; the query looks most like member 1 and least like member 2
    coords = np.array([[10.0, 10.0], [10.01, 10.02], [10.02, 10.0]])
    X = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    ref = Refiner.build(X, coords, np.zeros(3, int), 1, RefineConfig(min_samples=5), show_progress=False)
    assert len(ref.clusters) == 1 and ref.clusters["n_members"].iat[0] == 3  # below min_samples: one cluster
    q = np.array([[0.1, 1.0, -0.5]], np.float32)
    out = ref.refine(q, np.array([[0]]), np.array([[1.0]]), np.array([[10.0, 10.0]]))
    assert out.refined[0] and (out.lat[0], out.lon[0]) == (10.01, 10.02)
    assert ref.gallery["id"].iat[out.gallery_row[0]] == "1"


def _random_gallery(seed: int, n: int = 600, n_cells: int = 12, dim: int = 8):
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(-50, 60, n_cells), rng.uniform(-170, 170, n_cells)])
    cells = rng.integers(0, n_cells - 2, n)  # the last two cells stay empty
    sub = rng.integers(0, 3, n)  # three sub-clusters per cell, a few hundred km apart
    coords = centres[cells] + sub[:, None] * 2.0 + rng.normal(0, 0.05, (n, 2))
    X = rng.normal(size=(n, dim)).astype(np.float32) + cells[:, None] * 0.1
    return X, coords, cells, n_cells


def _reference(ref: Refiner, X, cands, probs, head_guess, T, limit):
    """A slow, per-query implementation of the refinement rule, straight from the paper's description.

    Returns one ``(cell, lat, lon, refined, probs)`` per query; ``probs`` is ``p_cell * softmax(score / T)``
    renormalised over the candidates (the head's, renormalised, after a fallback or with nothing refined)."""
    metric = ref.config.metric
    G = np.asarray(ref._gallery_emb, np.float64)
    P = np.asarray(ref._cluster_emb, np.float64)
    latlon = ref.gallery[["lat", "lon"]].to_numpy()

    def prep(v):
        return _unit(v) if metric == "cosine" else np.asarray(v, np.float64)

    def sim(q, e):
        return float(q @ e) if metric == "cosine" else -float(np.linalg.norm(q - e))

    out = []
    for b in range(len(X)):
        q = prep(X[b])
        best_cluster, scores = {}, []
        for c in cands[b]:
            ids = list(range(ref.cell_ptr[c], ref.cell_ptr[c + 1]))
            if not ids:
                scores.append(-np.inf)
                continue
            s = [sim(q, P[p]) for p in ids]
            best_cluster[c] = ids[int(np.argmax(s))]
            scores.append(max(s))
        scores = np.array(scores)
        head = probs[b] / probs[b].sum()
        if not np.isfinite(scores).any():
            out.append((cands[b][0], *head_guess[b], False, head))
            continue
        e = np.where(np.isfinite(scores), np.exp((scores - scores[np.isfinite(scores)].max()) / T), 0)
        combined = probs[b] * e / e.sum()
        cell = cands[b][int(np.argmax(combined))]

        def nearest(cell):
            p = best_cluster[cell]
            members = range(ref.proto_ptr[p], ref.proto_ptr[p + 1])
            return latlon[max(members, key=lambda m: sim(q, G[m]))]

        lat, lon = nearest(cell)
        if limit is not None and haversine_km(lat, lon, *head_guess[b]) > limit:
            cell = cands[b][0]
            if cell not in best_cluster:
                out.append((cell, *head_guess[b], False, head))
                continue
            lat, lon = nearest(cell)
            combined = head
        out.append((cell, lat, lon, True, combined / combined.sum()))
    return out


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("search", ["exact", "index"])
@pytest.mark.parametrize("noise", ["singletons", "drop"])
def test_batched_refinement_equals_a_per_query_reference(metric, search, noise, monkeypatch):
    X, coords, cells, n_cells = _random_gallery(seed=1)
    ref = Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5, xi=0.05, metric=metric,
                                                               search=search, noise=noise, index_neighbours=10_000),
                        show_progress=False)
    rng = np.random.default_rng(2)
    Q = rng.normal(size=(40, X.shape[1])).astype(np.float32)
    cands = np.stack([rng.permutation(n_cells)[:5] for _ in range(40)])
    probs = np.sort(rng.dirichlet(np.ones(n_cells), 40)[:, :5], axis=1)[:, ::-1]
    head_guess = coords[rng.integers(0, len(coords), 40)]
    monkeypatch.setattr("pigeon.refine._search.CHUNK_ELEMENTS", 300)  # force many chunks
    out = ref.refine(Q, cands, probs, head_guess, temperature=0.7, max_move_km=8000)
    expected = _reference(ref, Q, cands, probs, head_guess, 0.7, 8000)
    assert [(int(c), bool(r)) for c, r in zip(out.cell, out.refined)] == [(int(e[0]), e[3]) for e in expected]
    np.testing.assert_allclose(np.column_stack([out.lat, out.lon]), np.array([e[1:3] for e in expected], float))
    # float16 gallery scored in float32 here, in float64 by the reference: equal to about 1e-3
    np.testing.assert_allclose(out.probs, np.array([e[4] for e in expected]), rtol=1e-2, atol=1e-6)
    assert np.abs(out.probs - probs / probs.sum(axis=1, keepdims=True)).max() > 0.05  # not the head's
    ranked = np.take_along_axis(out.probs, out.order, axis=1)  # the order is the order of the probabilities
    assert (np.diff(ranked, axis=1) <= 1e-12).all()
    assert out.refined.any() and (np.asarray([e[0] for e in expected]) != cands[:, 0]).any()
    assert CHUNK_ELEMENTS > 300  # the module constant itself is untouched


def test_cells_without_clusters_never_win():
    X, coords, cells, n_cells = _random_gallery(seed=3)
    ref = Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5), show_progress=False)
    empty = [n_cells - 1, n_cells - 2]  # no gallery rows
    cands = np.array([[empty[0], empty[1], 0, 1]] * 6)
    probs = np.array([[0.9, 0.08, 0.01, 0.01]] * 6)
    out = ref.refine(X[:6], cands, probs, coords[:6], max_move_km=None)
    assert set(out.cell) <= {0, 1} and out.refined.all()
    only_empty = ref.refine(X[:2], cands[:2, :2], probs[:2, :2], np.array([[1.0, 2.0]] * 2))
    assert not only_empty.refined.any() and (only_empty.lat == 1.0).all() and (only_empty.cell == empty[0]).all()


def test_infinite_temperature_keeps_the_heads_ranking():
    X, coords, cells, n_cells = _random_gallery(seed=4)
    ref = Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5), show_progress=False)
    rng = np.random.default_rng(5)
    cands = np.stack([rng.permutation(n_cells - 2)[:5] for _ in range(30)])
    probs = np.sort(rng.dirichlet(np.ones(5), 30), axis=1)[:, ::-1]
    out = ref.refine(X[:30], cands, probs, coords[:30], temperature=1e9, max_move_km=None)
    np.testing.assert_array_equal(out.cell, cands[:, 0])
    np.testing.assert_array_equal(out.order, np.tile(np.arange(5), (30, 1)))
    cold = ref.refine(X[:30], cands, probs, coords[:30], temperature=1e-3, max_move_km=None)
    assert (cold.cell != cands[:, 0]).any()  # at low T the retrieval score decides


def test_a_move_beyond_the_limit_falls_back_to_the_top_cell():
    coords = np.array([[0.0, 0.0], [0.0, 0.1], [40.0, 40.0], [40.0, 40.1]])
    X = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float32)
    ref = Refiner.build(X, coords, np.array([0, 0, 1, 1]), 2, RefineConfig(min_samples=5), show_progress=False)
    q = np.array([[0.0, 1.0]], np.float32)  # looks like cell 1, 5,000+ km from the head's guess in cell 0
    args = (q, np.array([[0, 1]]), np.array([[0.6, 0.4]]), np.array([[0.0, 0.05]]))
    assert ref.refine(*args, temperature=0.01, max_move_km=None).cell[0] == 1
    capped = ref.refine(*args, temperature=0.01, max_move_km=1000)
    assert capped.cell[0] == 0 and capped.refined[0] and capped.lat[0] == 0.0


def test_noise_points_are_singletons_or_left_out():
    rng = np.random.default_rng(0)
    coords = np.vstack([rng.normal([10, 10], 0.01, (20, 2)), rng.normal([12, 14], 0.01, (20, 2)), [[30, 30]]])
    X = rng.normal(size=(41, 4)).astype(np.float32)
    kept = Refiner.build(X, coords, np.zeros(41, int), 1, RefineConfig(min_samples=5), show_progress=False)
    dropped = Refiner.build(X, coords, np.zeros(41, int), 1, RefineConfig(min_samples=5, noise="drop"),
                            show_progress=False)
    isolated = kept.gallery.index[kept.gallery["lat"] == 30][0]
    assert kept.clusters["n_members"].min() == 1 and kept.gallery["cluster"].iat[isolated] >= 0
    assert len(dropped) == 41 and (dropped.gallery["cluster"] == -1).sum() >= 1
    assert dropped.clusters["n_members"].sum() < 41 and len(dropped.clusters) >= 2


def test_save_load_round_trip_gives_identical_refinements(tmp_path):
    X, coords, cells, n_cells = _random_gallery(seed=6)
    ref = Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5), ids=[f"img{i}" for i in range(len(X))],
                        backbone="pigeontest:tiny", show_progress=False)
    ref.save(tmp_path / "refiner")
    again = Refiner.load(tmp_path / "refiner")
    assert again.config == ref.config and again.backbone == "pigeontest:tiny" and len(again) == len(ref)
    assert isinstance(again._gallery_emb, np.memmap)
    cands = np.tile(np.arange(5), (20, 1))
    probs = np.full((20, 5), 0.2)
    a = ref.refine(X[:20], cands, probs, coords[:20])
    b = again.refine(X[:20], cands, probs, coords[:20])
    for field in ("cell", "lat", "lon", "refined", "order", "gallery_row"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(ref.nearest(X[:5], 3)[0], again.nearest(X[:5], 3)[0])


def test_nearest_neighbour_baseline_finds_the_query_itself():
    X, coords, cells, n_cells = _random_gallery(seed=7)
    ref = Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5), show_progress=False)
    rows, scores = ref.nearest(X[:10], k=2)
    found = ref.gallery.iloc[rows[:, 0]]
    np.testing.assert_allclose(found[["lat", "lon"]].to_numpy(), coords[:10])
    assert (scores[:, 0] >= scores[:, 1]).all()


@pytest.mark.parametrize("name", ["gallery.parquet", "clusters.parquet", "embeddings.safetensors", "meta.json"])
def test_damaged_refiner_folders_give_one_line_errors(tmp_path, name):
    X, coords, cells, n_cells = _random_gallery(seed=8, n=60)
    root = Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5), show_progress=False).save(
        tmp_path / "r")
    (root / name).unlink()
    with pytest.raises(PigeonError, match="rebuild it|not found") as info:
        Refiner.load(root)
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)
    (root / name).write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="rebuild it|not valid JSON"):
        Refiner.load(root)


@pytest.mark.parametrize("bad", [dict(temperature=0), dict(temperature=-1), dict(top_k=0), dict(noise="keep"),
                                 dict(metric="dot"), dict(xi=1.5), dict(max_move_km=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(InputError):
        RefineConfig(**bad).validate()


def test_gallery_checks():
    with pytest.raises(InputError, match="non-empty"):
        Refiner.build(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(0, int), 2, show_progress=False)
    with pytest.raises(InputError, match="differ in length"):
        Refiner.build(np.zeros((3, 3)), np.zeros((2, 2)), np.zeros(3, int), 2, show_progress=False)
    with pytest.raises(InputError, match=r"cells must be in \[0, 2\)"):
        Refiner.build(np.zeros((3, 3)), np.zeros((3, 2)), np.array([0, 1, 2]), 2, show_progress=False)
    ref = Refiner.build(np.eye(3, dtype=np.float32), np.zeros((3, 2)), np.zeros(3, int), 1, show_progress=False)
    with pytest.raises(InputError, match="dims"):
        ref.refine(np.zeros((1, 5)), np.array([[0]]), np.array([[1.0]]), np.zeros((1, 2)))
    with pytest.raises(InputError, match="temperature"):
        ref.refine(np.zeros((1, 3)), np.array([[0]]), np.array([[1.0]]), np.zeros((1, 2)), temperature=0)


@pytest.mark.parametrize("index", ["IVF8,Flat", "HNSW16"])
def test_trained_indexes_are_saved_and_memory_mapped(tmp_path, index):
    X, coords, cells, n_cells = _random_gallery(seed=9, n=800)
    config = RefineConfig(min_samples=5, search="index", index=index, nprobe=8, index_neighbours=10_000)
    ref = Refiner.build(X, coords, cells, n_cells, config, show_progress=False)
    root = ref.save(tmp_path / "r")
    assert {"clusters.faiss", "gallery.faiss"} <= {p.name for p in root.iterdir()}
    again = Refiner.load(root)
    exact = Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5), show_progress=False)
    rows, _ = again.nearest(X[:50], 1)
    truth, _ = exact.nearest(X[:50], 1)
    assert (rows[:, 0] == truth[:, 0]).mean() >= 0.9  # recall@1 of the approximate index on its own points
    cands = np.tile(np.arange(5), (30, 1))
    a = again.refine(X[:30], cands, np.full((30, 5), 0.2), coords[:30])
    b = exact.refine(X[:30], cands, np.full((30, 5), 0.2), coords[:30])
    assert (a.cell == b.cell).mean() >= 0.8


def test_a_bad_index_type_is_a_clear_error():
    X, coords, cells, n_cells = _random_gallery(seed=10, n=100)
    with pytest.raises(InputError, match="index type 'IVF-nonsense'"):
        Refiner.build(X, coords, cells, n_cells, RefineConfig(min_samples=5, index="IVF-nonsense"),
                      show_progress=False)
