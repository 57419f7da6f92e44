"""The bundled demo model behind the service, Blue Marble views as upload bytes, and clients that wait for ready."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
import zlib

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from pigeon.serve import ServeConfig, create_app  # noqa: E402


@pytest.fixture(scope="session")
def geo():
    from pigeon.model import Geolocator

    model = Geolocator.from_pretrained("demo")
    model.backbone  # noqa: B018
    return model


@pytest.fixture(scope="session")
def place(tmp_path_factory):
    """Two places, 4 Blue Marble views each (128 px JPEGs): (bytes of every view, manifest)."""
    from pigeon.data import image_views, make_bluemarble_dataset

    df = make_bluemarble_dataset(tmp_path_factory.mktemp("bm"), n=2, views=4, seed=7)
    return [[p.read_bytes() for p in views] for views in image_views(df)], df


def wait_ready(client, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < end, client.get("/readyz").json()
        time.sleep(0.05)


@contextlib.contextmanager
def running(geo, **settings):
    """A TestClient over a fresh app with these ServeConfig settings, started and warmed up."""
    app = create_app(geo, ServeConfig(**settings), "demo")
    with TestClient(app) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def client(geo):
    with running(geo) as c:
        yield c


def jpeg(size=(96, 64), color=(30, 120, 200), **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", **save)
    return buf.getvalue()


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG of a few dozen bytes whose header claims width x height pixels (billions)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17]))
    data[ihdr + 17:ihdr + 21] = crc.to_bytes(4, "big")
    return bytes(data)


def files(*blobs: bytes, field: str = "files", name: str = "view.jpg", mime: str = "image/jpeg"):
    return [(field, (f"{i}-{name}", blob, mime)) for i, blob in enumerate(blobs)]


def assert_error(response, status: int, kind: str, *needles: str) -> dict:
    """A JSON error with this status and kind whose one-line message mentions ``needles``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["kind"] == kind, error
    assert "\n" not in error["message"] and "Traceback" not in error["message"]
    for needle in needles:
        assert needle.lower() in error["message"].lower(), (needle, error["message"])
    return error


@contextlib.contextmanager
def live(geo, **settings):
    """The service for ``geo`` under uvicorn on a free loopback port, in a thread: (base URL, app)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(geo, ServeConfig(port=port, **settings), "demo")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    import httpx

    end = time.monotonic() + 180  # warming up on a busy shared machine can take a minute or more
    while True:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < end, "the live server did not become ready"
        time.sleep(0.1)
    try:
        yield base, app
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server(geo):
    """The bundled demo behind the service under uvicorn: (base URL, app)."""
    with live(geo) as served:
        yield served
