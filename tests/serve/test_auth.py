"""Auth as one gate in front of every route: the public list, routes added later, order, failed keys, URLs, logs."""

from __future__ import annotations

import base64
import hashlib
import logging
import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from pigeon.serve import ServeConfig, create_app, server_config
from pigeon.serve._auth import PUBLIC_PATHS, is_public
from tests.support.serve import assert_error, files, jpeg, running, wait_ready

KEY, OTHER = "k" * 24, "o" * 24


def _concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", "x", path)


def _routes(routes) -> list:
    """Every route, those of included routers too (FastAPI keeps those behind a lazy ``original_router``)."""
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)
        out += _routes(included.routes) if included is not None else [route]
    return out


def _every_request(app) -> list[tuple[str, str]]:
    """(method, path) for every route of the app, mounts included (a file path under each mount)."""
    out = []
    for route in _routes(app.routes):
        if isinstance(route, Mount):
            out.append(("GET", route.path + "/app.js"))
        elif isinstance(route, (APIRoute, Route)):
            out += [(m, _concrete(route.path)) for m in sorted(route.methods or {"GET"}) if m not in ("HEAD",)]
    return out


@pytest.fixture(scope="module")
def keyed(geo):
    app = create_app(geo, ServeConfig(api_keys=frozenset({KEY, OTHER})), "demo")

    @app.get("/v1/added-later")  # a route added to the app by someone else: it inherits the gate
    async def added_later() -> dict:
        return {"secret": 42}

    async def extra(name: str) -> dict:
        return {"name": name}

    app.add_api_route("/extra/{name}", extra, methods=["POST"])
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def test_every_route_outside_the_public_list_needs_a_key(keyed):
    requests = _every_request(keyed.app)
    guarded = [(m, p) for m, p in requests if not is_public(p)]
    assert {("POST", "/v1/predict"), ("GET", "/v1/stats"), ("GET", "/v1/cells"), ("GET", "/v1/added-later"),
            ("POST", "/extra/x")} <= set(guarded)
    assert {p for _, p in requests if is_public(p)} >= PUBLIC_PATHS - {"/redoc", "/docs/oauth2-redirect"}
    for method, path in requests:
        r = keyed.request(method, path)
        if is_public(path):
            assert r.status_code != 401, (method, path)
        else:
            assert_error(r, 401, "unauthorized", "X-API-Key")
            assert keyed.request(method, path, headers={"X-API-Key": KEY}).status_code != 401, (method, path)
    assert keyed.get("/v1/added-later", headers={"X-API-Key": KEY}).json() == {"secret": 42}
    assert keyed.get("/v1/not-a-route").status_code == 401  # unknown paths reveal nothing without a key


def test_the_schema_marks_exactly_the_guarded_routes(keyed):
    schema = keyed.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for op in operations.values():
            assert ("security" in op) == (not is_public(path)), path
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_auth_comes_before_parameter_validation(keyed):
    assert_error(keyed.post("/v1/predict", params={"top_k": 0}, files=files(jpeg())), 401, "unauthorized")
    assert_error(keyed.post("/v1/predict", params={"top_k": 0}, files=files(jpeg()), headers={"X-API-Key": KEY}),
                 422, "bad_parameter", "top_k")


def test_an_empty_x_api_key_does_not_hide_a_bearer_key(keyed):
    headers = {"X-API-Key": "", "Authorization": f"Bearer {KEY}"}
    assert keyed.post("/v1/predict", files=files(jpeg()), headers=headers).status_code == 200
    assert_error(keyed.get("/v1/stats", headers={"X-API-Key": " ", "Authorization": "Bearer "}), 401, "unauthorized")


def test_keys_in_the_url_are_refused_everywhere(keyed):
    for path in ("/v1/info", "/v1/predict", "/healthz"):
        for name in ("api_key", "key", "token"):
            r = keyed.get(path, params={name: KEY})
            assert_error(r, 401, "key_in_url", "X-API-Key header", "query string")


def test_failed_key_attempts_are_limited_per_address(geo):
    with running(geo, api_keys=frozenset({KEY}), auth_failures_per_minute=3) as c:
        for _ in range(5):
            assert_error(c.get("/v1/stats"), 401, "unauthorized")  # no key at all: guesses nothing, not counted
        for _ in range(3):
            assert_error(c.get("/v1/stats", headers={"X-API-Key": "w" * 24}), 401, "unauthorized", "not valid")
        r = c.get("/v1/stats", headers={"X-API-Key": "w" * 24})
        assert_error(r, 429, "too_many_failed_keys", "wrong API keys")
        assert int(r.headers["retry-after"]) >= 1
        assert_error(c.get("/v1/stats", headers={"X-API-Key": KEY}), 429, "too_many_failed_keys")  # blocked: no oracle
        assert c.get("/healthz").status_code == 200  # public routes stay open


def test_stats_are_per_key_and_rate_limited(geo, place):
    with running(geo, api_keys=frozenset({KEY, OTHER}), rate_limit_per_minute=4) as c:
        body = c.post("/v1/predict", files=files(place[0][0][0]), headers={"X-API-Key": KEY}).json()
        mine = c.get("/v1/stats", headers={"X-API-Key": KEY}).json()
        theirs = c.get("/v1/stats", headers={"X-API-Key": OTHER}).json()
        assert mine["guesses_by_country"] == {body["guess"]["country"]: 1}
        assert theirs["guesses_by_country"] == {} and theirs["served"] == 1  # aggregates stay global
        c.get("/v1/stats", headers={"X-API-Key": KEY})
        c.get("/v1/stats", headers={"X-API-Key": KEY})
        assert_error(c.get("/v1/stats", headers={"X-API-Key": KEY}), 429, "rate_limited")


def test_security_headers_on_the_docs_too(client):
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        for script in re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL):  # each inline script by its hash
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in csp
    assert "unsafe-inline" not in client.get("/docs").headers["content-security-policy"].split("script-src")[1]
    assert client.get("/openapi.json").headers["x-content-type-options"] == "nosniff"
    assert client.get("/v1/info").headers["cache-control"] == "no-store"


def test_access_logs_never_show_query_strings(geo):
    app = create_app(geo, ServeConfig())
    server_config(app, ServeConfig())  # installs the filter on uvicorn's access logger
    access = logging.getLogger("uvicorn.access")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    access.addHandler(handler)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", "/v1/predict?top_k=3&api_key=SECRET", "1.1", 401)
    finally:
        access.removeHandler(handler)
    assert lines == ['127.0.0.1:5 - "POST /v1/predict HTTP/1.1" 401']
