"""The bundled demo model behind the service, Blue Marble views as upload bytes, and clients that wait for ready."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install -e '.[serve]'")

from tests.support.serve import live, running  # noqa: E402


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
    with live(geo) as server:
        yield server
