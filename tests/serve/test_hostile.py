"""Bounded work per request: the hostile corpus, huge JSON bodies, the pixel budget, slow and oversized clients."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pigeon.serve._guard import Budget, Hold
from tests.support.hostile import SECONDS_PER_FILE, corpus
from tests.support.serve import assert_error, files, hold, jpeg, live, running


# ------------------------------------------------------------------ the corpus
@pytest.mark.parametrize("item", corpus(), ids=lambda h: h.name)
def test_every_hostile_file_is_answered_in_bounded_time(client, item):
    start = time.perf_counter()
    r = client.post("/v1/predict", files=files(item.data, name=item.name, mime="application/octet-stream"))
    took = time.perf_counter() - start
    if item.served:
        assert r.status_code == 200, (item.name, r.text)
        assert r.json()["views"] == 1
    else:
        assert 400 <= r.status_code < 500, (item.name, r.status_code, r.text)
        error = r.json()["error"]
        assert error["message"].startswith("files[0]: ") and "\n" not in error["message"]
    assert took < SECONDS_PER_FILE, (item.name, took)


def test_the_refusals_name_the_problem(client):
    by_name = {h.name: h.data for h in corpus()}

    def post(name):
        return client.post("/v1/predict", files=files(by_name[name]))

    assert_error(post("wide.png"), 400, "extreme_aspect_ratio", "40000x1", "20:1 limit", "crop it")
    assert_error(post("tall.png"), 400, "extreme_aspect_ratio", "1x40000")
    assert_error(post("text_bomb.png"), 400, "corrupt_image", "not a readable image", "MAX_TEXT_CHUNK")
    assert_error(post("claims_huge.jpg"), 413, "too_many_pixels", "decompression-bomb")
    assert_error(post("claims_big_truncated.png"), 413, "too_many_pixels", "10000x9000", "40,000,000")
    assert_error(post("polyglot_html.png"), 415, "not_an_image", "JPEG/PNG/WEBP")
    assert_error(post("animated.gif"), 415, "not_an_image")


# ---------------------------------------------------------- bodies and counts
def test_a_json_body_with_millions_of_images_is_refused_before_parsing(geo, monkeypatch):
    from pigeon.serve import _uploads

    def never(max_views):
        raise AssertionError("the JSON body was parsed")

    monkeypatch.setattr(_uploads, "_json_body", never)
    body = b'{"images": [' + b'"",' * 17_499_999 + b'""]}'  # 52.5 MB: under the body limit
    with running(geo) as c:
        assert len(body) < c.app.state.service.cfg.max_body_bytes
        start = time.perf_counter()
        r = c.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        took = time.perf_counter() - start
    assert_error(r, 400, "too_many_files", "more than 4 strings")
    assert took < 10, took  # a body read and one bounded scan (it took 38 s, all on the event loop, before)


def test_parsing_runs_off_the_event_loop(geo, monkeypatch, place):
    from pigeon.serve import _service

    release = hold(monkeypatch, _service, "parse_uploads")
    with running(geo) as c:
        worker = threading.Thread(target=lambda: c.post("/v1/predict", files=files(place[0][0][0])))
        worker.start()
        time.sleep(0.3)
        start = time.perf_counter()
        assert c.get("/healthz").status_code == 200  # answered while a body is being parsed
        assert time.perf_counter() - start < 2
        release.set()
        worker.join()


def test_a_multipart_body_without_its_closing_boundary(client):
    cut = (b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
           b"Content-Type: image/jpeg\r\n\r\n" + jpeg())
    r = client.post("/v1/predict", content=cut, headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert_error(r, 400, "bad_multipart", "closing boundary")
    assert client.post("/v1/predict", content=cut + b"\r\n--xyz--\r\n",
                       headers={"content-type": "multipart/form-data; boundary=xyz"}).status_code == 200


# --------------------------------------------------------------- budgets
def test_budget_refuses_past_its_limit_and_gets_everything_back():
    budget = Budget(100, "pixels being decoded at once", "too_many_pixels", lambda: 3)
    with Hold(budget) as a:
        a.take(60)
        with pytest.raises(Exception, match="at its limit of 100 pixels") as busy:
            Hold(budget).take(50)
        assert busy.value.status == 503 and busy.value.retry_after == 3
        with pytest.raises(Exception, match="needs 120 pixels") as never:
            a.take(60)  # more than the whole budget for one request: 413, not "retry"
        assert never.value.status == 413 and never.value.kind == "too_many_pixels"
    assert budget.used == 0


def test_decoded_pixel_budget_for_requests_in_flight(geo, monkeypatch):
    from pigeon.serve import _service

    image = jpeg(size=(900, 900))  # 810,000 pixels (a JPEG this small decodes whole)
    with running(geo, max_pixels=1_000_000, max_decode_pixels=1_000_000, max_views=2) as c:
        release = hold(monkeypatch, _service, "decode_view")
        first = []
        worker = threading.Thread(target=lambda: first.append(c.post("/v1/predict", files=files(image))))
        worker.start()
        time.sleep(0.5)
        busy = c.post("/v1/predict", files=files(image))
        assert_error(busy, 503, "busy", "pixels being decoded at once", "Retry-After")
        assert int(busy.headers["retry-after"]) >= 1
        release.set()
        worker.join()
        assert first[0].status_code == 200
        assert c.app.state.service.pixels.used == 0
        assert c.post("/v1/predict", files=files(image)).status_code == 200
        assert_error(c.post("/v1/predict", files=files(image, image)), 413, "too_many_pixels", "1,620,000")


# ------------------------------------------------------ slow and oversized clients
def _send(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(data)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


@pytest.fixture(scope="module")
def strict_server(geo):
    with live(geo, read_timeout_s=1.0, max_pending=1, max_header_bytes=8192) as (base, app):
        yield int(base.rsplit(":", 1)[1]), app


def test_oversized_headers_get_431_not_a_reset(strict_server):
    port, _ = strict_server
    sock = _send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**20 + b"\r\n\r\n")
    answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"kind": "headers_too_large"' in answer and b"8,192 bytes" in answer


def test_slow_headers_are_dropped_with_408(strict_server):
    port, _ = strict_server
    start = time.perf_counter()
    sock = _send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"read_timeout" in answer, answer[:200]
    assert 0.9 < time.perf_counter() - start < 6


def test_a_slow_body_is_dropped_and_holds_no_slot(strict_server, place):
    import httpx

    port, app = strict_server
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\n")
    slow = [_send(port, head) for _ in range(3)]  # three clients that stop sending (max_pending is 1)
    time.sleep(0.2)
    r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", files=files(place[0][0][0]), timeout=30)
    assert r.status_code == 200, r.text  # the slow readers hold no --max-pending slot
    for sock in slow:
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"body did not arrive within 1 s" in answer, answer[:300]
    assert app.state.service.bodies.used == 0
