"""``method=`` on /v1/predict: every method of the model (a plugin's too), the ``refine=`` alias, clear 400s."""

from __future__ import annotations

import pytest

from pigeon.images import load_image
from pigeon.model import Geolocator, build_artefacts, plan_artefacts
from pigeon.model.placers import TrainingData
from tests.support import dummy_placer
from tests.support.serve import assert_error, files, running


def test_each_method_of_the_model_answers_as_in_process(client, geo, place):
    views = place[0][0]
    info = client.get("/v1/info").json()
    assert info["methods"] == geo.methods == ["cell", "geoclip", "refine", "knn"] and info["default_method"] == "refine"
    for method in info["methods"]:
        body = client.post("/v1/predict", files=files(*views), params={"method": method, "top_k": 3}).json()
        [pred] = geo.predict([[load_image(v) for v in views]], top_k=3, method=method)
        assert body["method"] == method and body["guess"]["lat"] == pytest.approx(pred.lat, abs=1e-4)
        assert [c["probability"] for c in body["top_k"]] == pytest.approx([c.prob for c in pred.top_k])
        assert [c["cell_probability"] for c in body["top_k"]] == pytest.approx([c.cell_prob for c in pred.top_k])
    assert client.post("/v1/predict", files=files(*views)).json()["method"] == "refine"


def test_refine_is_an_alias_and_bad_methods_say_what_to_send(client, place):
    views = place[0][0][:1]
    off = client.post("/v1/predict", files=files(*views), params={"refine": "false"}).json()
    cell = client.post("/v1/predict", files=files(*views), params={"method": "cell"}).json()
    assert off["method"] == "cell" and off["top_k"] == cell["top_k"]
    assert_error(client.post("/v1/predict", files=files(*views), params={"method": "knnn"}), 400, "bad_method",
                 "did you mean 'knn'", "/v1/info")
    assert_error(client.post("/v1/predict", files=files(*views), params={"method": "knn", "refine": "false"}), 400,
                 "bad_method", "contradicts")
    assert_error(client.post("/v1/predict", files=files(*views), params={"method": "x" * 65}), 422, "bad_parameter")


def test_a_registered_method_is_served(geo, place):
    views = place[0][0][:2]
    with dummy_placer.registered() as name:
        plain = Geolocator(geo.head, geo.cells, dict(geo.config), geo.standardiser, backbone=geo.backbone)
        with running(plain) as client:  # the model has no dummy artefact: the method is known but unavailable
            assert_error(client.post("/v1/predict", files=files(*views), params={"method": name}), 400,
                         "bad_method", "needs a dummy")
        gallery = geo.refiner.gallery
        data = TrainingData(gallery["id"].to_numpy(), None, gallery[["lat", "lon"]].to_numpy(float),
                            gallery["cell"].to_numpy())
        build_artefacts(plain, data, plan_artefacts([name], plain.n_cells))
        with running(plain) as client:
            assert client.get("/v1/info").json()["methods"] == ["cell", name]
            body = client.post("/v1/predict", files=files(*views), params={"method": name}).json()
            assert body["method"] == name and body["guess"]["lat"] == pytest.approx(plain.artefacts[name][0], abs=1e-4)
