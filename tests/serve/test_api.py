"""Every endpoint with FastAPI's TestClient: the answers match the model in-process, bad input gets a JSON 4xx."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from pigeon.geo import haversine_km
from pigeon.images import load_image
from tests.support.serve import assert_error, files, jpeg, png_bomb, running


# ------------------------------------------------------------------ answers
def _in_process(geo, views: list[bytes], top_k: int = 5):
    [pred] = geo.predict([[load_image(v) for v in views]], top_k=top_k)
    return pred


def test_one_view_matches_the_model_in_process(client, geo, place):
    views = place[0][0][:1]
    r = client.post("/v1/predict", files=files(*views), params={"top_k": 3})
    assert r.status_code == 200, r.text
    body, pred = r.json(), _in_process(geo, views, 3)
    assert body["guess"]["cell"] == pred.cell and body["guess"]["country"] == pred.country
    assert body["guess"]["lat"] == pytest.approx(pred.lat, abs=1e-4)
    assert [c["cell"] for c in body["top_k"]] == [c.cell for c in pred.top_k]
    assert [c["probability"] for c in body["top_k"]] == pytest.approx([c.prob for c in pred.top_k], abs=1e-5)
    assert body["confidence"] == pytest.approx(pred.confidence, abs=1e-5)
    assert body["views"] == 1 and body["refined"] is pred.refined and body["precision_km"] is None
    assert (body["head_guess"]["lat"], body["head_guess"]["lon"]) == pytest.approx((pred.cell_lat, pred.cell_lon),
                                                                                   abs=1e-4)
    assert set(body["aux"]) == set(pred.aux)
    assert body["probability_map"] is None and body["exif_gps"] is None
    assert body["timings"]["total_ms"] >= body["timings"]["model_ms"] > 0


def test_four_views_are_one_place_averaged_by_the_model(client, geo, place):
    views = place[0][1]
    body = client.post("/v1/predict", files=files(*views)).json()
    pred = _in_process(geo, views)
    assert body["views"] == 4
    assert [c["cell"] for c in body["top_k"]] == [c.cell for c in pred.top_k]
    assert body["confidence"] == pytest.approx(pred.confidence, abs=1e-5)
    one = client.post("/v1/predict", files=files(views[0])).json()
    assert one["confidence"] != pytest.approx(body["confidence"], abs=1e-6)  # the other views count


def test_json_base64_and_data_uris_give_the_same_answer(client, place):
    views = place[0][0]
    multipart = client.post("/v1/predict", files=files(*views)).json()
    encoded = [base64.b64encode(v).decode() for v in views]
    encoded[1] = "data:image/jpeg;base64," + encoded[1]
    as_json = client.post("/v1/predict", json={"images": encoded}).json()
    assert as_json["top_k"] == multipart["top_k"] and as_json["guess"] == multipart["guess"]


def test_probability_map_points_and_polygons(client, geo, place):
    views = place[0][0][:2]
    body = client.post("/v1/predict", files=files(*views), params={"map": 1}).json()
    fc = body["probability_map"]
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == geo.n_cells
    assert {f["geometry"]["type"] for f in fc["features"]} == {"Point"}
    assert sum(f["properties"]["prob"] for f in fc["features"]) == pytest.approx(1.0, abs=1e-4)
    best = max(fc["features"], key=lambda f: f["properties"]["prob"])
    assert best["properties"]["cell"] == body["guess"]["cell"]
    full = client.post("/v1/predict", files=files(*views), params={"map": 1, "polygons": 1}).json()
    assert {f["geometry"]["type"] for f in full["probability_map"]["features"]} <= {"Polygon", "MultiPolygon"}


def test_exif_gps_gives_the_true_spot_and_the_distance(client):
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps.update({1: "S", 2: (33.0, 52.0, 4.0), 3: "E", 4: (151.0, 12.0, 36.0)})  # Sydney
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (90, 140, 60)).save(buf, "JPEG", exif=exif)
    body = client.post("/v1/predict", files=files(jpeg(), buf.getvalue())).json()
    truth = body["exif_gps"]
    assert truth["view"] == 1
    assert truth["lat"] == pytest.approx(-(33 + 52 / 60 + 4 / 3600)) and truth["lon"] == pytest.approx(151.21)
    want = float(haversine_km(truth["lat"], truth["lon"], body["guess"]["lat"], body["guess"]["lon"]))
    assert truth["distance_km"] == pytest.approx(want, abs=0.01)


def test_type_is_read_from_content_not_from_name(client):
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(buf, "PNG")
    r = client.post("/v1/predict", files=files(buf.getvalue(), name="photo.jpg", mime="image/jpeg"))
    assert r.status_code == 200
    gif = io.BytesIO()
    Image.new("RGB", (40, 40)).save(gif, "GIF")
    assert_error(client.post("/v1/predict", files=files(gif.getvalue(), name="x.png", mime="image/png")),
                 415, "not_an_image", "JPEG/PNG/WEBP")


def test_refine_on_by_default_and_off_on_request(client, geo, place):
    from pigeon.model import Geolocator

    assert geo.refiner is not None and client.get("/v1/info").json()["refiner"] is True
    views = place[0][0][:1]
    default = client.post("/v1/predict", files=files(*views)).json()
    off = client.post("/v1/predict", files=files(*views), params={"refine": "false"}).json()
    assert default["refined"] is True and off["refined"] is False
    assert default["head_guess"] == off["head_guess"] == off["guess"]  # off: the head's cell centroid
    [pred] = geo.predict([[load_image(v) for v in views]])
    assert default["guess"]["lat"] == pytest.approx(pred.lat, abs=1e-4)
    head_only = Geolocator(geo.head, geo.cells, geo.config, geo.standardiser, backbone=geo.backbone)
    with running(head_only) as plain:  # a model without a refiner: refine is accepted and has no effect
        assert plain.get("/v1/info").json()["refiner"] is False
        for value in ("true", "false"):
            body = plain.post("/v1/predict", files=files(*views), params={"refine": value}).json()
            assert body["refined"] is False
            # the same cells and places; not the same probabilities: the demo's calibration (its unseen-ground
            # flattening reads the refiner's similarities) does not come with a bare head
            assert [(c["cell"], c["lat"], c["lon"]) for c in body["top_k"]] == \
                [(c["cell"], c["lat"], c["lon"]) for c in off["top_k"]]


# ---------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def small(geo):
    """A server with small limits, to test them with small bodies."""
    with running(geo, max_image_bytes=50_000, max_pixels=1_000_000, max_views=2) as c:
        yield c


def test_text_as_image(client):
    assert_error(client.post("/v1/predict", files=files(b"just some text, not a photo")), 415, "not_an_image",
                 "files[0]", "JPEG")


def test_truncated_jpeg(client, place):
    whole = place[0][0][0]
    assert_error(client.post("/v1/predict", files=files(whole[: len(whole) // 2])), 400, "corrupt_image",
                 "truncated or corrupt", "files[0]")


def test_tiny_png_that_decodes_to_billions_of_pixels(client):
    bomb = png_bomb()
    assert len(bomb) < 100
    assert_error(client.post("/v1/predict", files=files(bomb, mime="image/png")), 413, "too_many_pixels",
                 "decompression-bomb", "downscale")


def test_pixel_limit_is_the_servers_own(small, client):
    big = jpeg(size=(1200, 1000))  # 1.2 Mpx: over `small`'s limit, under the default one
    assert_error(small.post("/v1/predict", files=files(big)), 413, "too_many_pixels", "1200x1000", "1,000,000")
    assert client.post("/v1/predict", files=files(big)).status_code == 200


def test_too_many_files(client, small):
    assert_error(client.post("/v1/predict", files=files(*[jpeg()] * 5)), 400, "too_many_files", "at most 4")
    assert_error(small.post("/v1/predict", files=files(*[jpeg()] * 3)), 400, "too_many_files", "at most 2")
    flood = files(*[b"x"] * 200)  # parsing stops at the first parts over the limit
    assert_error(client.post("/v1/predict", files=flood), 400, "too_many_files", "parts sent")


def test_empty_body(client):
    r = client.post("/v1/predict", content=b"", headers={"content-type": "multipart/form-data; boundary=x"})
    assert_error(r, 400, "no_images", "empty")
    assert_error(client.post("/v1/predict"), 415, "unsupported_media_type", "multipart/form-data")


def test_wrong_field_name(client):
    assert_error(client.post("/v1/predict", files=files(jpeg(), field="file")), 400, "no_images",
                 "'files'", "got field 'file'")
    assert_error(client.post("/v1/predict", data={"files": "photo.jpg"}, files=[("x", ("a", b"1"))]),
                 400, "not_a_file")


def test_huge_json(small):
    body = json.dumps({"images": ["A" * 400_000] * 2}).encode()
    assert_error(small.post("/v1/predict", content=body, headers={"content-type": "application/json"}),
                 413, "body_too_large", "limit")


def test_one_image_over_the_size_limit(small):
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noisy.save(buf, "PNG")
    assert len(buf.getvalue()) > 50_000
    assert_error(small.post("/v1/predict", files=files(buf.getvalue())), 413, "image_too_large", "files[0]")


@pytest.mark.parametrize(("payload", "status", "kind", "needle"), [
    (b'{"images": ["%%%"]}', 400, "bad_base64", "base64"),
    (b'{"images": [', 400, "bad_json", "not valid JSON"),
    (b'{"images": []}', 422, "bad_json", "images"),
    (b'{"pictures": ["aGk="]}', 422, "bad_json", "images"),
])
def test_bad_json_bodies(client, payload, status, kind, needle):
    r = client.post("/v1/predict", content=payload, headers={"content-type": "application/json"})
    assert_error(r, status, kind, needle)


def test_other_content_types_and_parameters(client):
    assert_error(client.post("/v1/predict", content=b"hi", headers={"content-type": "text/plain"}),
                 415, "unsupported_media_type", "text/plain")
    assert_error(client.post("/v1/predict", params={"top_k": 0}, files=files(jpeg())), 422, "bad_parameter", "top_k")
    assert_error(client.post("/v1/predict", params={"top_k": 999}, files=files(jpeg())), 422, "bad_parameter")
    assert_error(client.post("/v1/predict", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}),
                 400, "bad_multipart", "boundary")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")
    assert_error(client.get("/v1/nothing"), 404, "not_found", "/docs")


def test_an_empty_file_part(client):
    assert_error(client.post("/v1/predict", files=files(b"")), 400, "empty_file", "files[0]")


# --------------------------------------------------------- other endpoints
def test_health_ready_info(client, geo):
    assert client.get("/healthz").json() == {"status": "ok", "detail": None}
    assert client.get("/readyz").json()["status"] == "ready"
    info = client.get("/v1/info").json()
    assert info["n_cells"] == geo.n_cells and info["auth_required"] is False and info["precision_km"] is None
    assert info["limits"]["max_views"] == 4 and "track" in info["intended_use"]


def test_readyz_says_why_a_model_is_not_ready(geo):
    from pigeon.model import Geolocator
    from pigeon.serve import ServeConfig, create_app
    from fastapi.testclient import TestClient

    broken = Geolocator(geo.head, geo.cells, {**geo.config, "backbone": "nosuch:backbone"}, geo.standardiser)
    with TestClient(create_app(broken, ServeConfig())) as c:
        for _ in range(200):
            r = c.get("/readyz")
            if r.json()["detail"] != "loading the model":
                break
        assert r.status_code == 503 and "nosuch" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200
        assert_error(c.post("/v1/predict", files=files(jpeg())), 503, "not_ready", "loading")


def test_stats_count_requests_errors_latency_batches_and_countries(geo, place):
    with running(geo) as c:
        good = [c.post("/v1/predict", files=files(v[0])).json() for v in place[0]]
        c.post("/v1/predict", files=files(b"text"))
        c.post("/v1/predict", files=files(*[jpeg()] * 5))
        stats = c.get("/v1/stats").json()
    assert stats["requests"] == 4 and stats["served"] == 2
    assert stats["errors"] == {"not_an_image": 1, "too_many_files": 1}
    assert stats["latency_ms"]["p50"] > 0 and stats["latency_ms"]["p99"] >= stats["latency_ms"]["p50"]
    assert stats["batches"] == 2 and stats["batch_images"] == {"1": 2}
    countries = [g["guess"]["country"] for g in good]
    assert stats["guesses_by_country"] == {k: countries.count(k) for k in set(countries)}
    assert stats["queue_depth"] == 0 and stats["in_flight"] == 0


def test_boundaries_and_cells_geojson(client, geo):
    countries = client.get("/v1/boundaries").json()
    names = {f["properties"]["iso_a2"]: f["properties"]["name"] for f in countries["features"]}
    assert len(names) > 200 and names["FR"] == "France"
    r = client.get("/v1/boundaries", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.json()["type"] == "FeatureCollection"
    cells = client.get("/v1/cells").json()
    assert [f["properties"]["cell"] for f in cells["features"]] == list(range(geo.n_cells))


def test_page_and_docs_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert "/static/vendor/leaflet/leaflet.js" in html and "http://" not in html and "https://" not in html
    for asset in ("/static/app.js", "/static/app.css", "/static/vendor/leaflet/leaflet.js",
                  "/static/vendor/leaflet/leaflet.css", "/static/vendor/leaflet/LICENSE"):
        r = client.get(asset)
        assert r.status_code == 200 and r.content, asset
    assert "http" not in client.get("/static/app.js").text
    assert "BSD 2-Clause" in client.get("/static/vendor/leaflet/LICENSE").text
    docs = client.get("/docs").text
    assert "swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]["content"].keys() == {
        "multipart/form-data", "application/json"}


def test_cors_is_off_unless_asked(client, geo):
    origin = {"origin": "https://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/v1/info", headers=origin).headers
    with running(geo, cors_origins=("https://elsewhere.example",)) as c:
        r = c.get("/v1/info", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"
