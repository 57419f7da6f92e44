"""Against misuse and overload: keys, rate limits, the precision cap, busy and slow requests, nothing kept."""

from __future__ import annotations

import base64
import dataclasses
import logging
import tempfile
import threading
import time

import numpy as np
import pytest

from pigeon.errors import InputError, PigeonError
from pigeon.geo import haversine_km
from pigeon.serve import PrecisionCap, ServeConfig, is_loopback, read_api_keys
from pigeon.serve._guard import RateLimiter
from tests.support import assert_clean_error
from tests.support.serve import assert_error, files, hold, jpeg, running

KEY = "k" * 24


# --------------------------------------------------------------------- keys
def test_off_loopback_needs_a_key_or_an_explicit_no_auth():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("example.org")
    with pytest.raises(InputError, match="--api-key-file"):
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", no_auth=True).auth_required is False
    assert ServeConfig(host="0.0.0.0", api_keys=frozenset({KEY})).auth_required is True
    with pytest.raises(InputError, match="contradict"):
        ServeConfig(api_keys=frozenset({KEY}), no_auth=True)


def test_key_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"# operators\n{KEY}\n\n{'z' * 20}\n")
    assert read_api_keys(path) == {KEY, "z" * 20}
    path.write_text("short\n")
    with pytest.raises(InputError, match="16 characters"):
        read_api_keys(path)
    path.write_text("# nothing\n")
    with pytest.raises(InputError, match="no API key"):
        read_api_keys(path)
    with pytest.raises(PigeonError, match="not found"):
        read_api_keys(tmp_path / "missing.txt")


def test_keys_guard_predict_stats_and_cells_but_not_the_page(geo):
    with running(geo, api_keys=frozenset({KEY})) as c:
        assert_error(c.post("/v1/predict", files=files(jpeg())), 401, "unauthorized", "X-API-Key")
        assert_error(c.post("/v1/predict", files=files(jpeg()), headers={"X-API-Key": "w" * 24}),
                     401, "unauthorized", "not valid")
        assert c.post("/v1/predict", files=files(jpeg()), headers={"X-API-Key": KEY}).status_code == 200
        assert c.post("/v1/predict", files=files(jpeg()), headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        for path in ("/v1/stats", "/v1/cells"):
            assert_error(c.get(path), 401, "unauthorized")
            assert c.get(path, headers={"X-API-Key": KEY}).status_code == 200
        for path in ("/", "/healthz", "/readyz", "/v1/info", "/v1/boundaries", "/static/app.js"):
            assert c.get(path).status_code == 200, path
        assert c.get("/v1/info").json()["auth_required"] is True
        assert c.get("/v1/stats", headers={"X-API-Key": KEY}).json()["errors"]["unauthorized"] == 4
        assert "X-API-Key" in str(c.get("/openapi.json").json()["components"]["securitySchemes"])


# --------------------------------------------------------------- rate limits
def test_rate_limit_per_key_with_retry_after(geo):
    other = "o" * 24
    with running(geo, api_keys=frozenset({KEY, other}), rate_limit_per_minute=2) as c:
        for _ in range(2):
            assert c.post("/v1/predict", files=files(jpeg()), headers={"X-API-Key": KEY}).status_code == 200
        r = c.post("/v1/predict", files=files(jpeg()), headers={"X-API-Key": KEY})
        assert_error(r, 429, "rate_limited", "2 requests a minute")
        assert 1 <= int(r.headers["retry-after"]) <= 30
        assert c.post("/v1/predict", files=files(jpeg()), headers={"X-API-Key": other}).status_code == 200


def test_token_bucket_refills_and_forgets_idle_clients():
    limiter = RateLimiter(per_minute=60, max_clients=3)
    for _ in range(60):
        limiter.check("a", now=0.0)
    with pytest.raises(Exception, match="retry in 1 s"):
        limiter.check("a", now=0.0)
    limiter.check("a", now=1.0)  # one token a second
    for name in "bcd":
        limiter.check(name, now=100.0)
    assert len(limiter._buckets) <= 3  # a's bucket refilled long ago: dropped
    RateLimiter(None).check("anyone")  # no limit


# ------------------------------------------------------------- precision cap
def test_precision_cap_boxes_are_at_least_that_wide():
    rng = np.random.default_rng(0)
    for km in (25.0, 500.0):
        cap = PrecisionCap(km)
        lat, lon = rng.uniform(-89.9, 89.9, 400), rng.uniform(-180, 180, 400)
        snapped = np.array([cap.snap(a, b) for a, b in zip(lat, lon)])
        assert np.all(np.array([cap.snap(a, b) for a, b in snapped]) == snapped)  # centres stay put
        for row in range(0, cap.n_rows, max(1, cap.n_rows // 40)):
            centres = np.array([cap.centre(row, col) for col in range(min(int(cap.n_cols[row]), 2))])
            edge = -90 + cap.row_deg * (row + (1 if centres[0, 0] > 0 else 0))  # the poleward edge
            if len(centres) == 2:
                width = float(haversine_km(edge, centres[0, 1], edge, centres[1, 1]))
                assert width >= km * 0.999, (km, row, width)
        assert float(haversine_km(0, 0, cap.row_deg, 0)) >= km * 0.999


def test_a_capped_server_returns_only_box_centres(geo, place):
    km = 500.0
    cap = PrecisionCap(km)
    with running(geo, max_precision_km=km) as c:
        body = c.post("/v1/predict", files=files(*place[0][0]), params={"map": 1, "top_k": 5}).json()
        assert body["precision_km"] == km and body["guess"]["cell"] is None
        points = [(body["guess"]["lat"], body["guess"]["lon"])] + [(t["lat"], t["lon"]) for t in body["top_k"]]
        points += [tuple(reversed(f["geometry"]["coordinates"])) for f in body["probability_map"]["features"]]
        for lat, lon in points:
            assert cap.snap(lat, lon) == pytest.approx((lat, lon), abs=1e-4)
        assert all(t["cell"] is None for t in body["top_k"])
        assert all("cell" not in f["properties"] for f in body["probability_map"]["features"])
        probs = [t["probability"] for t in body["top_k"]]
        assert probs == sorted(probs, reverse=True)
        assert sum(f["properties"]["prob"] for f in body["probability_map"]["features"]) == pytest.approx(1, abs=1e-4)
        assert_error(c.get("/v1/cells"), 403, "precision_capped", "500 km")
        assert_error(c.post("/v1/predict", files=files(jpeg()), params={"map": 1, "polygons": 1}),
                     403, "precision_capped")
        assert c.get("/v1/info").json()["cell_polygons"] is False


#: numbers an answer may hold that are not locations (anything else must be a box centre under a cap)
_NOT_LOCATIONS = {"confidence", "probability", "prob", "precision_km", "distance_km", "views", "view",
                  "batch_images", "decode_ms", "queue_ms", "model_ms", "total_ms", "month"}


def _numbers(node, path=()):
    """(path, number) of every number in a JSON document; a coordinate pair counts as one (lat, lon) item."""
    if isinstance(node, dict):
        if "lat" in node and "lon" in node:
            yield path + ("lat/lon",), (node["lat"], node["lon"])
        for key, value in node.items():
            if key not in ("lat", "lon"):
                yield from _numbers(value, path + (key,))
    elif isinstance(node, list):
        if path and path[-1] == "coordinates":
            yield path, (node[1], node[0])  # GeoJSON: (lon, lat)
        else:
            for i, value in enumerate(node):
                yield from _numbers(value, path + (i,))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def test_no_number_in_a_capped_answer_is_finer_than_the_cap(geo, place):
    """Every location in every answer (guess, head guess, top-k, map, the upload's own EXIF GPS) is a box centre."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.5), 3: "E", 4: (2.0, 17.0, 40.2)})  # Paris
    buf = io.BytesIO()
    Image.open(io.BytesIO(place[0][0][0])).save(buf, "JPEG", exif=exif)
    cap = PrecisionCap(300.0)
    with running(geo, max_precision_km=cap.km) as c:
        answers = [c.post("/v1/predict", files=files(buf.getvalue(), *place[0][0][1:]), params=params).json()
                   for params in ({}, {"map": 1, "top_k": 10}, {"refine": "false", "map": 1})]
    assert all(a["exif_gps"] is not None for a in answers)
    pairs = 0
    for answer in answers:
        for path, value in _numbers(answer):
            if isinstance(value, tuple):
                assert cap.snap(*value) == pytest.approx(value, abs=1e-4), (path, value)
                pairs += 1
            else:
                assert path[0] == "aux" or path[-1] in _NOT_LOCATIONS, (path, value)
    assert pairs > 3 * 3 + geo.n_cells  # guesses, head guesses and EXIF positions of 3 answers, and the maps
    truth = answers[0]["exif_gps"]
    assert (truth["lat"], truth["lon"]) == pytest.approx(cap.snap(48.858, 2.2945), abs=1e-4)


# -------------------------------------------------------------- under load
def _slow(service, seconds: float):
    """Make the model calls of ``service`` take ``seconds`` longer; returns the undo."""
    predict = service.batcher.predict

    def slow(queries):
        time.sleep(seconds)
        return predict(queries)

    service.batcher.predict = slow
    return lambda: setattr(service.batcher, "predict", predict)


def _post_in_threads(client, n: int, **kwargs) -> list:
    out = [None] * n

    def go(i):
        out[i] = client.post("/v1/predict", files=files(jpeg(color=(i * 20, 80, 90))), **kwargs)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_requests_share_model_calls(geo):
    with running(geo, batch_wait_ms=300, max_batch=32) as c:
        responses = _post_in_threads(c, 6)
        assert all(r.status_code == 200 for r in responses)
        stats = c.get("/v1/stats").json()
    assert stats["served"] == 6 and stats["batches"] < 6
    assert max(r.json()["timings"]["batch_images"] for r in responses) > 1


def test_full_server_answers_503_with_retry_after(geo):
    with running(geo, max_pending=1) as c:
        _slow(c.app.state.service, 1.0)
        responses = _post_in_threads(c, 4)
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 1 and codes.count(503) >= 1, codes
    busy = next(r for r in responses if r.status_code == 503)
    assert_error(busy, 503, "busy", "Retry-After")
    assert int(busy.headers["retry-after"]) >= 1


def test_a_request_over_its_time_limit_gets_503(geo):
    with running(geo, request_timeout_s=0.3) as c:
        undo = _slow(c.app.state.service, 1.0)
        r = c.post("/v1/predict", files=files(jpeg()))
        assert_error(r, 503, "timeout", "0.3 s limit")
        assert "retry-after" in r.headers
        time.sleep(1.2)  # the abandoned batch finishes; the server goes on answering
        undo()
        svc = c.app.state.service
        svc.cfg = dataclasses.replace(svc.cfg, request_timeout_s=30)  # not a speed test: the shared CPU is noisy
        assert c.post("/v1/predict", files=files(jpeg())).status_code == 200


def test_decoding_does_not_block_the_event_loop(geo, monkeypatch):
    from pigeon.serve import _service

    with running(geo) as c:
        release = hold(monkeypatch, _service, "decode_view")
        worker = threading.Thread(target=lambda: c.post("/v1/predict", files=files(jpeg())))
        worker.start()
        time.sleep(0.2)
        assert c.get("/healthz").status_code == 200  # answered while a decode is stuck...
        assert worker.is_alive() and not release.is_set()  # ...and still held (no timing: the CPU is shared)
        release.set()
        worker.join()


# ------------------------------------------------------------ nothing kept
def test_uploads_never_touch_disk_or_logs(geo, place, monkeypatch, caplog, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    big = np.random.default_rng(1).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "PNG")
    assert len(buf.getvalue()) > 2 * 2**20  # over the 1 MB where form parsers spool to disk
    caplog.set_level(logging.DEBUG)
    with running(geo) as c:
        assert c.post("/v1/predict", files=files(buf.getvalue(), mime="image/png")).status_code == 200
        assert c.post("/v1/predict", json={"images": [base64.b64encode(place[0][0][0]).decode()]}).status_code == 200
        c.post("/v1/predict", files=files(b"\xff\xd8\xff secret bytes"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret bytes" not in logged and base64.b64encode(place[0][0][0][:30]).decode() not in logged


# ---------------------------------------------------------------------- CLI
def test_cli_refuses_to_expose_the_model_without_keys(cli):
    assert_clean_error(cli("serve", "demo", "--host", "0.0.0.0"), "--api-key-file", "--no-auth")
    assert_clean_error(cli("serve", "demo", "--api-key-file", "nope.txt"), "nope.txt")
    assert_clean_error(cli("serve", "demo", "--max-precision-km", "-5"), "max-precision-km")


def test_cli_merges_options_over_the_defaults(cli, monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("pigeon.serve.serve", lambda geo, config, model_name: seen.update(
        geo=geo, config=config, name=model_name))
    keys = tmp_path / "keys.txt"
    keys.write_text(KEY + "\n")
    result = cli("serve", "demo", "--host", "0.0.0.0", "--port", "9001", "--api-key-file", str(keys),
                 "--max-precision-km", "25", "--rate-limit", "30", "--max-upload-mb", "2", "--cors-origin", "http://a.b")
    assert result.exit_code == 0, result.stderr
    cfg, default = seen["config"], ServeConfig()
    assert (cfg.host, cfg.port, cfg.api_keys, cfg.max_precision_km, cfg.rate_limit_per_minute) == (
        "0.0.0.0", 9001, frozenset({KEY}), 25.0, 30.0)
    assert cfg.max_image_bytes == 2 * 2**20 and cfg.cors_origins == ("http://a.b",)
    assert (cfg.max_batch, cfg.max_views, cfg.request_timeout_s) == (default.max_batch, default.max_views,
                                                                      default.request_timeout_s)
    from pigeon.model import Geolocator
    from pigeon.model._geolocator import pretrained_path

    bundled = Geolocator.from_pretrained(pretrained_path("demo"))  # the name resolves to the bundled model
    assert seen["geo"].n_cells == bundled.n_cells and seen["name"] == "demo"
    assert "precision cap: 25 km" in result.stderr
