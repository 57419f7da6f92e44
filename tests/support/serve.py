"""Upload bytes (JPEGs, a PNG that claims billions of pixels), multipart fields, JSON error checks, a client over a
fresh app that waits until it is ready, the service live under uvicorn, and a way to hold a stage of it."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
import zlib

from PIL import Image


def wait_ready(client, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < end, client.get("/readyz").json()
        time.sleep(0.05)


@contextlib.contextmanager
def running(geo, **settings):
    """A TestClient over a fresh app with these ServeConfig settings, started and warmed up."""
    from fastapi.testclient import TestClient

    from pigeon.serve import ServeConfig, create_app

    app = create_app(geo, ServeConfig(**settings), "demo")
    with TestClient(app) as client:
        wait_ready(client)
        yield client


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


def hold(monkeypatch, module, name: str) -> threading.Event:
    """Make ``module.name`` wait (at most 10 s) for the returned event before it runs: a stuck decode or parse."""
    original = getattr(module, name)
    release = threading.Event()

    def held(*args):
        release.wait(10)
        return original(*args)

    monkeypatch.setattr(module, name, held)
    return release


@contextlib.contextmanager
def live(geo, **settings):
    """The service under uvicorn (with its own protocol and limits) on a free loopback port, in a thread:
    (base URL, app)."""
    import httpx
    import uvicorn

    from pigeon.serve import ServeConfig, create_app, server_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ServeConfig(port=port, **settings)
    app = create_app(geo, cfg, "demo")
    server = uvicorn.Server(server_config(app, cfg, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 180  # the shared machine can be very busy
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
