"""The placer registry: names and hints, probabilities in the order of the candidates, old model folders, and a
new method (one registration) reaching the CLI and the model folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.special import softmax

from pigeon.errors import InputError, UnknownNameError
from pigeon.model import Geolocator, build_artefacts, plan_artefacts, placers
from pigeon.model.placers import METHODS, TrainingData, get_placer
from pigeon.model.placers.knn import POOL
from pigeon.refine import RefineConfig
from tests.support import assert_clean_error
from tests.support import dummy_placer


@pytest.fixture(scope="module")
def demo():
    return Geolocator.from_pretrained("demo")


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    """Six Blue Marble places, 4 views each (paths)."""
    from pigeon.data import image_views, make_bluemarble_dataset

    return image_views(make_bluemarble_dataset(tmp_path_factory.mktemp("bm"), n=6, views=4, seed=11))


@pytest.fixture(scope="module")
def X(demo, views):
    return demo.embed(views)


def test_the_registry_lists_every_method_with_what_it_needs():
    assert [m for m in METHODS if m in ("cell", "refine", "knn")] == ["cell", "refine", "knn"]
    assert all(p.description for p in METHODS.values())
    assert [a.name for a in get_placer("refine").needs] == [a.name for a in get_placer("knn").needs] == ["refiner"]
    assert get_placer("cell").needs == () and placers.default_method([]) == "cell"
    assert placers.default_method(["refiner"]) == "refine"
    assert "knn: the nearest training image" in placers.methods_help()


def test_unknown_methods_name_the_closest(demo, cli, X):
    with pytest.raises(UnknownNameError, match="unknown placing method 'knnn'; did you mean 'knn'"):
        demo.predict_embeddings(X, method="knnn")
    assert_clean_error(cli("predict", "demo", "x.jpg", "--method", "refin"), "did you mean 'refine'")
    assert_clean_error(cli("train", "m.parquet", "--cells", "c", "--embeddings", "e", "-o", "o", "--methods",
                           "refine,cel"), "did you mean 'cell'")
    assert_clean_error(cli("train", "m.parquet", "--cells", "c", "--embeddings", "e", "-o", "o", "--methods",
                           "knn", "--no-refine"), "--no-refine", "needs one")


@pytest.mark.parametrize("top_k", [1, 5, 8])
def test_every_placer_gives_probabilities_in_the_order_of_its_candidates(demo, X, top_k):
    K = demo.refiner.config.top_k
    for method in demo.methods:
        preds = demo.predict_embeddings(X, top_k=top_k, method=method)
        placement = demo.place_embeddings(X, top_k=top_k, method=method)
        assert placement.method == method and placement.cell_probs.shape == (len(X), demo.n_cells)
        np.testing.assert_allclose(placement.cell_probs.sum(axis=1), 1, atol=1e-5)
        for n, p in enumerate(preds):
            q = np.array([c.prob for c in p.top_k])
            assert len(q) == top_k and (np.diff(q) <= 1e-12).all() and ((0 <= q) & (q <= 1)).all(), (method, q)
            np.testing.assert_allclose(q, placement.probs[n, :top_k])
            assert [c.cell_prob for c in p.top_k] == pytest.approx([p.probs[c.cell] for c in p.top_k])
            assert p.confidence == p.top_k[0].cell_prob and p.method == method
            if method == "cell":  # the placer's are the head's probabilities; cell_prob the calibrated posterior's
                assert [c.prob for c in p.top_k] == pytest.approx([placement.cell_probs[n, c.cell] for c in p.top_k])
            if method == "refine":  # a distribution over the refiner's K candidates; later ones are never chosen
                assert q[:K].sum() == pytest.approx(1) if top_k >= K else q.sum() <= 1 + 1e-9
                assert (q[K:] == 0).all()
    rows, scores = demo.refiner.nearest(X, POOL)
    knn = demo.place_embeddings(X, top_k=top_k, method="knn")
    expected = softmax(np.asarray(scores, np.float64) / demo.refiner.config.temperature, axis=1)[:, :top_k]
    np.testing.assert_allclose(knn.probs, expected, rtol=1e-5)


def assert_same(preds, others) -> None:
    assert [p.to_dict() for p in preds] == [q.to_dict() for q in others]
    np.testing.assert_array_equal(np.stack([p.probs for p in preds]), np.stack([q.probs for q in others]))


def _primitives(geo, X, method: str, k: int) -> np.ndarray:
    """(N, 3) guess (cell, lat, lon) computed straight from the head, cells and refiner, as before the registry."""
    probs = geo.forward_embeddings(X)["probs"]
    top = np.argsort(-probs, axis=1, kind="stable")
    if method == "cell":
        return np.column_stack([top[:, 0], geo.cells.centroids[top[:, 0]]])
    refiner = geo.refiner
    if method == "knn":
        row = refiner.nearest(X, k)[0][:, 0]
        return refiner.gallery[["cell", "lat", "lon"]].to_numpy(float)[row]
    K = refiner.config.top_k
    cands = top[:, :K]
    out = refiner.refine(X, cands, np.take_along_axis(probs, cands, 1), geo.cells.centroids[top[:, 0]])
    return np.column_stack([out.cell, out.lat, out.lon])


def test_old_model_folders_load_and_predict_as_before(demo, X, tmp_path):
    assert demo.stages == ["head", "geoclip", "refiner"] and demo.methods == ["cell", "geoclip", "refine", "knn"]
    older = tmp_path / "older"  # a folder from before config.json recorded its stages and methods, without geoclip
    shutil.copytree(demo_folder(), older)
    shutil.rmtree(older / "geoclip")
    config = json.loads((older / "config.json").read_text())
    del config["stages"], config["methods"]
    (older / "config.json").write_text(json.dumps(config))
    again = Geolocator.from_pretrained(older)
    assert again.stages == ["head", "refiner"] and again.methods == ["cell", "refine", "knn"]
    assert demo.resolve_method(None) == again.resolve_method(None) == "refine"
    for method in ("cell", "refine", "knn"):
        for top_k in (1, 5):
            preds = demo.predict_embeddings(X, top_k=top_k, method=method)
            assert_same(preds, again.predict_embeddings(X, top_k=top_k, method=method))
            got = np.array([(p.cell, p.lat, p.lon) for p in preds])
            np.testing.assert_array_equal(got, _primitives(demo, X, method, top_k))
    assert any(p.refined for p in demo.predict_embeddings(X, method="refine"))


def demo_folder():
    from pigeon.model import pretrained_path

    return pretrained_path("demo")


def test_train_builds_what_the_named_methods_need():
    assert list(plan_artefacts(None, 50)) == ["refiner"]
    assert list(plan_artefacts(["knn"], 50)) == ["refiner"] and plan_artefacts(["cell"], 50) == {}
    artefact, config = plan_artefacts(["refine"], 50, preset="photo")["refiner"]
    assert config.top_k == 40 and artefact.name == "refiner"
    with pytest.raises(InputError, match="top_k 40 exceeds the model's 24 cells.*--no-refine"):
        plan_artefacts(["refine"], 24, preset="photo")
    assert plan_artefacts(["refine"], 24, {"refiner": RefineConfig(top_k=3)})["refiner"][1].top_k == 3
    with pytest.raises(UnknownNameError, match="did you mean 'refine'"):
        plan_artefacts(["refine", "refines"], 24)


def test_a_new_method_reaches_the_cli_and_survives_the_model_folder(demo, X, views, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    with dummy_placer.registered() as name:
        assert name in METHODS and name in cli("predict", "--help").stdout
        assert "dummy (needs dummy)" in cli("train", "--help").stdout
        with pytest.raises(InputError, match="needs a dummy .*pigeon train ... --methods dummy"):
            demo.predict_embeddings(X, method=name)
        gallery = demo.refiner.gallery
        data = TrainingData(gallery["id"].to_numpy(), None, gallery[["lat", "lon"]].to_numpy(float),
                            gallery["cell"].to_numpy())
        geo = Geolocator(demo.head, demo.cells, dict(demo.config), demo.standardiser, refiner=demo.refiner)
        build_artefacts(geo, data, plan_artefacts([name], geo.n_cells))
        assert geo.stages == ["head", "refiner", name] and geo.methods[-1] == name
        folder = geo.save_pretrained(tmp_path / "m")
        config = json.loads((folder / "config.json").read_text())
        assert config["stages"] == geo.stages and config["methods"] == geo.methods
        assert (folder / name / "mean.json").is_file() and f"- {name}: " in (folder / "README.md").read_text()
        again = Geolocator.from_pretrained(folder)
        assert again.artefacts[name] == geo.artefacts[name] and again.methods == geo.methods
        for method in again.methods:
            assert_same(again.predict_embeddings(X, method=method), geo.predict_embeddings(X, method=method))
        [pred] = again.predict_embeddings(X[:1], method=name)
        assert (pred.lat, pred.lon) == pytest.approx(geo.artefacts[name]) and pred.top_k[0].prob == 1.0
        result = cli("predict", folder, *views[0], "--views", "4", "--method", name, "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)[0]["method"] == name
    assert name not in METHODS and name not in cli("predict", "--help").stdout
