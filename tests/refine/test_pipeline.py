"""The prediction pipeline with a refiner: learning, stages, methods, folders, presets, hub ids, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from pigeon.errors import InputError, PigeonError, UnknownNameError
from pigeon.geo import haversine_km
from pigeon.model import Geolocator, TrainConfig, fit_head
from pigeon.refine import RefineConfig, Refiner
from tests.support.model import ToyCells, make_synthetic


@pytest.fixture(scope="module")
def syn():
    # locations spread around their cluster centres (sd 2.5 deg): the centroid alone is a few hundred km off,
    # and the embedding encodes the exact location, so retrieval can do better
    return make_synthetic(n=1500, noise=0.3, seed=1)


@pytest.fixture(scope="module")
def plain(syn):
    result = fit_head(syn.X[syn.train], syn.coords[syn.train], syn.cells[syn.train], syn.centroids,
                      config=TrainConfig(epochs=30, batch_size=64, lr=1e-2, device="cpu", aux=False))
    config = {"backbone": "pigeontest:tiny", "climate_classes": [], "train": {"views": "mean"}}
    return Geolocator(result.head, ToyCells(syn.centroids), config)


@pytest.fixture(scope="module")
def refined(plain, syn):
    ref = Refiner.build(syn.X[syn.train], syn.coords[syn.train], syn.cells[syn.train], len(syn.centroids),
                        RefineConfig(max_move_km=None), backbone="pigeontest:tiny", show_progress=False)
    return Geolocator(plain.head, plain.cells, dict(plain.config), refiner=ref)


def _median_km(preds, coords):
    return float(np.median(haversine_km([p.lat for p in preds], [p.lon for p in preds], coords[:, 0], coords[:, 1])))


def test_refinement_beats_the_cell_centroid_and_knn_is_retrieval(refined, syn):
    X, truth = syn.X[syn.test], syn.coords[syn.test]
    cell = _median_km(refined.predict_embeddings(X, method="cell"), truth)
    refine = _median_km(refined.predict_embeddings(X), truth)
    knn = _median_km(refined.predict_embeddings(X, method="knn"), truth)
    centroid_oracle = float(np.median(haversine_km(*truth.T, *syn.centroids[syn.cells[syn.test]].T)))
    assert refine < 0.6 * cell and refine < 0.6 * centroid_oracle  # beyond what any cell classifier can reach
    assert knn < 0.8 * cell


def test_predictions_say_how_they_were_made(refined, plain, syn):
    X = syn.X[syn.test[:20]]
    for top_k in (1, 3, 8):  # fewer and more candidates than the refiner's top 5
        preds = refined.predict_embeddings(X, top_k=top_k)
        heads = plain.predict_embeddings(X, top_k=top_k)
        for p, h in zip(preds, heads):
            assert len(p.top_k) == top_k and p.method == "refine" and p.refined
            assert (p.lat, p.lon) == (p.top_k[0].lat, p.top_k[0].lon) and p.cell == p.top_k[0].cell
            assert (p.cell_lat, p.cell_lon) == (h.lat, h.lon)  # the head's own guess is kept
            assert p.confidence == pytest.approx(p.probs[p.cell])
            if top_k >= 5:  # the refiner reorders the head's top 5 and leaves the rest in the head's order
                assert sorted(c.cell for c in p.top_k[:5]) == sorted(c.cell for c in h.top_k[:5])
                assert [c.cell for c in p.top_k[5:]] == [c.cell for c in h.top_k[5:]]
            assert p.to_dict()["refined"] is True and json.dumps(p.to_dict())
    assert not plain.predict_embeddings(X[:1])[0].refined and plain.resolve_method(None) == "cell"
    with pytest.raises(InputError, match="needs a refiner.*pigeon refine build"):
        plain.predict_embeddings(X, method="refine")
    with pytest.raises(UnknownNameError, match="unknown placing method 'nearest'"):
        refined.predict_embeddings(X, method="nearest")
    with pytest.raises(UnknownNameError, match="did you mean 'refine'"):
        refined.predict_embeddings(X, method="refin")


def test_refiner_must_fit_the_model(plain, syn):
    def build(X, cells=syn.cells[syn.train], n_cells=len(syn.centroids), backbone="pigeontest:tiny", **cfg):
        return Refiner.build(X, syn.coords[syn.train], cells, n_cells, RefineConfig(**cfg), backbone=backbone,
                             show_progress=False)

    geo = Geolocator(plain.head, plain.cells, dict(plain.config))
    with pytest.raises(InputError, match="8-d embeddings .* 32-d"):
        geo.set_refiner(build(syn.X[syn.train][:, :8]))
    with pytest.raises(InputError, match="built for 30 cells but the model has 24"):
        geo.set_refiner(build(syn.X[syn.train], n_cells=30))
    with pytest.raises(InputError, match="backbone 'clip:other'"):
        geo.set_refiner(build(syn.X[syn.train], backbone="clip:other"))
    with pytest.raises(InputError, match="top_k 40 exceeds .* 24 cells"):
        geo.set_refiner(build(syn.X[syn.train], top_k=40))
    assert geo.refiner is None


def test_model_folder_round_trip_with_refiner_card_and_stages(refined, syn, tmp_path):
    from pigeon.cells import GeoCells

    cells = GeoCells.build(syn.coords[:, 0], syn.coords[:, 1], method="naive", max_size=200)
    # a real GeoCells object so the folder can be saved: rebuild the refiner on its labels
    labels = cells.assign(*syn.coords[syn.train].T)
    result = fit_head(syn.X[syn.train], syn.coords[syn.train], labels, cells.centroids,
                      config=TrainConfig(epochs=3, batch_size=64, lr=1e-2, device="cpu", aux=False))
    ref = Refiner.build(syn.X[syn.train], syn.coords[syn.train], labels, len(cells), backbone="pigeontest:tiny",
                        show_progress=False)
    geo = Geolocator(result.head, cells, {"backbone": "pigeontest:tiny", "train": {"views": "mean"}}, refiner=ref)
    geo.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["stages"] == ["head", "refiner"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "Forbidden uses" in card and "refiner" in card and "pigeontest:tiny" in card
    again = Geolocator.from_pretrained(tmp_path / "m")
    X = syn.X[syn.test[:15]]
    for p, q in zip(geo.predict_embeddings(X), again.predict_embeddings(X)):
        assert (p.lat, p.lon, p.cell, p.refined, p.top_k) == (q.lat, q.lon, q.cell, q.refined, q.top_k)
    # a model whose refiner was removed still loads and predicts with the head
    shutil.rmtree(tmp_path / "m" / "refiner")
    config["stages"] = ["head"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    head_only = Geolocator.from_pretrained(tmp_path / "m")
    assert head_only.refiner is None and not head_only.predict_embeddings(X[:2])[0].refined


def test_model_hub_ids_load_from_the_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    from pigeon.model import pretrained_path  # the bundled demo model's folder is the repo content

    snapshot = tmp_path / "hub" / "models--pigeon-org--demo" / "snapshots" / ("a" * 40)
    shutil.copytree(pretrained_path("demo"), snapshot)
    (tmp_path / "hub" / "models--pigeon-org--demo" / "refs").mkdir()
    (tmp_path / "hub" / "models--pigeon-org--demo" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    geo = Geolocator.from_pretrained("pigeon-org/demo")
    bundled = Geolocator.from_pretrained("demo")
    assert geo.n_cells == bundled.n_cells and geo.config == bundled.config
    with pytest.raises(PigeonError, match="model hub could not provide it"):
        Geolocator.from_pretrained("pigeon-org/missing")


def test_unreadable_images_are_returned_as_errors_when_asked(tmp_path, syn):
    from tests.support.model import TinyBackbone

    result = fit_head(syn.X[syn.train], syn.coords[syn.train], syn.cells[syn.train], syn.centroids,
                      config=TrainConfig(epochs=1, device="cpu", aux=False))
    geo = Geolocator(result.head, ToyCells(syn.centroids), {"backbone": "pigeontest:tiny", "train": {}},
                     backbone=TinyBackbone())
    good = tmp_path / "good.png"
    Image.new("RGB", (20, 20), (10, 200, 30)).save(good)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.jpg"):
        geo.predict([str(good), str(tmp_path / "bad.jpg")])
    out = geo.predict([str(good), str(tmp_path / "bad.jpg"), [str(tmp_path / "bad.jpg"), str(good)]],
                      return_errors=True)
    assert isinstance(out[1], InputError) and "bad.jpg" in str(out[1])
    assert out[0].probs.shape == out[2].probs.shape  # a location with one readable view is predicted from it
    np.testing.assert_allclose(out[0].probs, out[2].probs, rtol=1e-6)
