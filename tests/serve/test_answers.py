"""The service's posterior: the guess per objective, P(within r), the credible region, the unseen score, and what a
precision cap withholds."""

from __future__ import annotations

import pytest

from pigeon.images import load_image
from tests.support.serve import assert_error, files, running


def test_the_answer_carries_the_posterior(client, geo, place):
    views = place[0][0]
    body = client.post("/v1/predict", files=files(*views), params={"guess": "distance", "region": 1}).json()
    [pred] = geo.predict([[load_image(v) for v in views]], guess="distance")
    assert body["objective"] == "distance" and body["guess"]["cell"] == pred.cell
    assert body["guess"]["lat"] == pytest.approx(pred.lat, abs=1e-4)
    assert list(body["p_within"]) == ["1km", "25km", "200km", "750km", "2500km"]
    assert body["p_within"]["750km"] == pytest.approx(pred.p_within[750], abs=1e-4)
    assert body["expected_km"] == pytest.approx(pred.expected_km, abs=0.1)
    assert body["coordinate_decimals"] == pred.decimals and body["unseen"] == pytest.approx(pred.unseen, abs=1e-6)
    assert 0 <= body["unseen"] <= 1  # the demo is calibrated: its unseen-ground reference came with it
    assert body["credible"]["q"] == 0.9 and body["credible"]["mass"] >= 0.9 - 1e-6
    assert body["credible"]["n_cells"] == len(pred.credible.cells)
    assert body["credible"]["cells"] == pred.credible.cells.tolist()
    region = body["credible_region"]
    assert region["type"] == "Feature" and region["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert client.post("/v1/predict", files=files(*views)).json()["credible_region"] is None  # only on request


def test_objectives_are_served_side_by_side_and_bad_ones_refused(client, place):
    views = place[0][1]
    answers = {g: client.post("/v1/predict", files=files(*views), params={"guess": g}).json()
               for g in ("mode", "distance", "score")}
    assert {g: a["objective"] for g, a in answers.items()} == {g: g for g in answers}
    assert answers["distance"]["expected_km"] <= answers["mode"]["expected_km"] + 0.1
    assert client.post("/v1/predict", files=files(*views)).json()["objective"] == "mode"  # the model's default
    assert_error(client.post("/v1/predict", files=files(*views), params={"guess": "median"}), 422,
                 "bad_parameter", "mode, distance, score")


def test_a_region_of_many_cells_is_listed_not_outlined(geo, place, monkeypatch):
    from pigeon.serve import _respond

    monkeypatch.setattr(_respond, "REGION_MAX_CELLS", 0)
    with running(geo) as client:
        body = client.post("/v1/predict", files=files(*place[0][0]), params={"region": 1}).json()
    assert body["credible_region"]["geometry"] is None and "credible.cells" in body["credible_region"]["properties"]["note"]


def test_info_lists_the_objectives_and_the_labels(client):
    info = client.get("/v1/info").json()
    assert info["guesses"] == ["mode", "distance", "score"] and info["default_guess"] == "mode"  # chosen on val
    assert info["calibrated"] is True and info["aux_labels"]["elevation_m"][:2] == ["elevation", "m"]


def test_a_precision_cap_withholds_fine_probabilities_and_the_region(geo, place):
    with running(geo, max_precision_km=100) as client:
        views = place[0][0]
        body = client.post("/v1/predict", files=files(*views)).json()
        assert body["p_within"]["1km"] is None and body["p_within"]["25km"] is None
        assert body["p_within"]["200km"] is not None and body["coordinate_decimals"] <= 1
        assert body["credible"]["cells"] is None and body["credible"]["n_cells"] >= 1
        assert_error(client.post("/v1/predict", files=files(*views), params={"region": 1}), 403, "precision_capped")
