"""Prediction: candidates, auxiliary outputs, probability maps, multi-view averaging and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pigeon.errors import InputError
from pigeon.model import Geolocator, TrainConfig, aux_targets, fit_head
from tests.support.model import TinyBackbone, ToyCells


@pytest.fixture(scope="module")
def geo(synthetic):
    syn = synthetic
    aux = aux_targets(syn.frame.iloc[syn.train])
    result = fit_head(syn.X[syn.train], syn.coords[syn.train], syn.cells[syn.train], syn.centroids,
                      aux=aux, config=TrainConfig(epochs=4, batch_size=64, lr=1e-2, device="cpu"))
    config = {"backbone": "pigeontest:tiny", "climate_classes": list(aux.climate_classes), "train": {"views": "mean"}}
    return Geolocator(result.head, ToyCells(syn.centroids), config, result.standardiser)


def test_predict_embeddings_gives_ranked_candidates_and_aux(geo, synthetic):
    preds = geo.predict_embeddings(synthetic.X[:3], top_k=4)
    assert len(preds) == 3
    for p in preds:
        probs = [c.prob for c in p.top_k]
        assert len(p.top_k) == 4 and probs == sorted(probs, reverse=True)
        assert p.confidence == probs[0] and p.cell == p.top_k[0].cell
        assert (p.lat, p.lon) == tuple(synthetic.centroids[p.cell])
        assert p.probs.shape == (len(synthetic.centroids),) and p.probs.sum() == pytest.approx(1, abs=1e-5)
        assert p.top_k[0].country == f"C{p.cell % 5}" and p.top_k[0].admin1 == f"R{p.cell}"
        assert p.aux["climate"]["class"] in ("Af", "Cfa", "Dfb")
        assert set(p.aux) == {"climate", "elevation_m", "temp_mean_c"}
        assert p.to_dict()["top_k"][0]["cell"] == p.cell


def test_probability_map_has_every_cell(geo, synthetic):
    pred = geo.predict_embeddings(synthetic.X[:1])[0]
    gj = pred.to_geojson()
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(synthetic.centroids)
    probs = np.array([f["properties"]["prob"] for f in gj["features"]])
    np.testing.assert_allclose(probs, pred.probs, rtol=1e-6)
    assert gj["features"][0]["geometry"]["type"] == "Polygon"


def _square(colour, path=None):
    img = Image.new("RGB", (16, 16), colour)
    if path is not None:
        img.save(path)
        return path
    return img


def test_multi_view_average_is_order_invariant(geo, tmp_path):
    geo._backbone = TinyBackbone()
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (90, 90, 0)]
    views = [_square(c, tmp_path / f"{i}.png") for i, c in enumerate(colours)]
    a, b = geo.predict([views, views[::-1]])
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-6, atol=1e-7)
    assert a.cell == b.cell
    # and it is the average of the views: the same as predicting from the mean embedding
    mean = geo.backbone.embed(views).astype(np.float64).mean(0, keepdims=True)
    np.testing.assert_allclose(geo.predict_embeddings(mean)[0].probs, a.probs, rtol=1e-5, atol=1e-7)
    single = geo.predict(views[0])[0]
    assert not np.allclose(single.probs, a.probs)


@pytest.mark.parametrize("make, match", [
    (lambda p: [p / "missing.jpg"], "not found"),
    (lambda p: [p / "corrupt.jpg"], "not a readable image"),
    (lambda p: [[]], "no views"),
    (lambda p: [], "no images"),
    (lambda p: [[p / "ok.png", 3]], "not an image"),
])
def test_bad_images_are_clear_errors(geo, tmp_path, make, match):
    geo._backbone = TinyBackbone()
    (tmp_path / "corrupt.jpg").write_bytes(b"this is not a JPEG")
    _square((1, 2, 3), tmp_path / "ok.png")
    with pytest.raises(InputError, match=match):
        geo.predict(make(tmp_path))


def test_wrong_embedding_size_and_top_k(geo):
    with pytest.raises(InputError, match=r"shape \(N, 32\)"):
        geo.predict_embeddings(np.zeros((2, 5), np.float32))
    with pytest.raises(InputError, match="top_k"):
        geo.predict_embeddings(np.zeros((1, 32), np.float32), top_k=0)


def test_cells_and_head_that_disagree_are_refused(geo, synthetic):
    with pytest.raises(InputError, match="disagree|cells but"):
        Geolocator(geo.head, ToyCells(synthetic.centroids[:-1]), geo.config, geo.standardiser)
