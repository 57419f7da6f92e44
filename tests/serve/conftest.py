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

from pigeon.serve import ServeConfig, create_app  # noqa: E402
from tests.support.serve import assert_error, files, jpeg, png_bomb, running, wait_ready  # noqa: E402,F401


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


@pytest.fixture(scope="module")
def client(geo):
    with running(geo) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(geo):
    """The service under uvicorn on a free loopback port, in a thread: (base URL, app)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(geo, ServeConfig(port=port), "demo")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    import httpx

    end = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < end, "the live server did not become ready"
        time.sleep(0.1)
    yield base, app
    server.should_exit = True
    thread.join(10)
