"""The page in a real browser: Playwright drives Debian's Chromium against a server on 127.0.0.1.

Upload photos, see the guess, the probability map and the EXIF truth on the vector map; a screenshot is saved
to ``$PIGEON_TEST_ARTIFACTS`` (default ``test-artifacts/``) as ``serve_page.png``. ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import copy
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np

import pytest
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Headless Chromium as root on a machine without network: no sandbox, no GPU, no background connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("PIGEON_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium'; "
                                "bash .ci/run installs it with apt-get)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _with_gps(jpeg_bytes: bytes, lat: float, lon: float, path: Path) -> Path:
    """Save a copy of the photo whose EXIF GPS says (lat, lon)."""
    def dms(value: float):
        value = abs(value)
        d, m = int(value), int(abs(value) * 60) % 60
        return (float(d), float(m), round((value * 3600) % 60, 2))

    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W",
                                 4: dms(lon)})
    Image.open(io.BytesIO(jpeg_bytes)).save(path, "JPEG", exif=exif, quality=95)
    return path


def _views(place, tmp_path, gps: bool = True) -> list[Path]:
    views, df = place
    row = df.iloc[1]
    paths = [_with_gps(views[1][0], float(row["lat"]), float(row["lon"]), tmp_path / "view0.jpg") if gps else None]
    for i, data in enumerate(views[1][int(gps):], start=int(gps)):
        (tmp_path / f"view{i}.jpg").write_bytes(data)
        paths.append(tmp_path / f"view{i}.jpg")
    return [p for p in paths if p is not None]


def _watch(page) -> list[str]:
    """Console errors, uncaught exceptions and failed requests (e.g. a missing favicon) of a page."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"exception: {exc}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return problems


def _probabilities(text: str) -> list[float]:
    """The percentages of the candidate list as shown ("< 0.1 %" counts as 0)."""
    values = []
    for line in text.splitlines():
        m = re.search(r"(<|>)?\s*([\d.]+) %", line)
        values.append(0.0 if m and m.group(1) == "<" else float(m.group(2)) if m else float("nan"))
    return values


def test_upload_photos_and_see_the_guess_on_the_map(browser, live_server, place, tmp_path):
    base, _ = live_server
    paths = _views(place, tmp_path)

    page = browser.new_page(viewport={"width": 1280, "height": 960})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    problems = _watch(page)
    page.goto(base + "/")
    page.wait_for_selector("body[data-state='ready'][data-boundaries='drawn']", timeout=30_000)
    assert page.locator("#map path.leaflet-interactive, #map svg path").count() > 200  # the countries, as vectors
    assert "track" in page.inner_text("#intended-use")

    page.set_input_files("#files", [str(p) for p in paths])  # one place, four views
    page.wait_for_selector("body[data-state='done']", timeout=60_000)
    assert page.locator("#thumbs img").count() == 4
    guess = page.inner_text("#guess")
    assert "—" in guess and "," in guess, guess
    assert page.locator("#candidates li").count() == 5
    assert page.locator("path.guess-marker").count() == 1 and page.locator("path.truth-marker").count() == 1
    assert page.locator("img.leaflet-marker-icon").count() == 0  # no default pins, from any layer
    truth = page.inner_text("#truth")
    assert "EXIF GPS" in truth and "km away" in truth, truth
    assert "ms (decode" in page.inner_text("#timings")
    assert re.match(r"P\(within 200 km\) [<>]? ?[\d.]+ %", page.inner_text("#confidence")), page.inner_text("#confidence")
    assert "expected error" in page.inner_text("#confidence") and "2,500 km" in page.inner_text("#within")
    shown = _probabilities(page.inner_text("#candidates"))
    assert shown == sorted(shown, reverse=True), shown  # in the order of the probabilities shown
    assert page.locator("#candidates li.is-guess .badge").count() == 1
    assert page.locator("path.credible-region").count() >= 1 and "credible region" in page.inner_text("#region")
    aux = page.inner_text("#aux")
    assert re.search(r"elevation -?[\d,]+ m\b", aux) and "°C" in aux and re.search(r"climate \w+, [a-z]", aux), aux
    assert "_" not in aux
    decimals = len(re.search(r"— ([\d.]+)°", page.inner_text("#guess")).group(1).partition(".")[2])
    assert decimals <= 2, page.inner_text("#guess")  # an error of hundreds of km: no finer digits
    assert page.locator("#unseen").is_hidden()  # seen ground...
    assert page.locator("#calibration").is_hidden()  # ...and no "not calibrated" note: the demo is calibrated

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "serve_page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    page.set_input_files("#files", [str(tmp_path / "view1.jpg")])  # a photo without GPS: no truth shown
    page.wait_for_function("document.querySelector('#thumbs').children.length === 1")
    page.wait_for_selector("body[data-state='done']", timeout=60_000)
    assert page.locator("#truth").is_hidden()
    assert all(url.startswith(base) or url.startswith(("blob:", "data:")) for url in requested), requested
    assert any(url.endswith("/static/favicon.svg") for url in requested)
    assert not problems, problems
    page.close()


def test_unseen_ground_is_a_visible_warning(browser, geo, place, tmp_path):
    """A calibration under which every photo is less like the training gallery than all validation photos."""
    from pigeon.posterior import Calibration
    from tests.support.serve import live

    unseen = copy.copy(geo)
    unseen.calibration = Calibration(temperature=1.0, flatten=(0.0, 1.0), reference=tuple(np.linspace(50, 60, 201)),
                                     n_val=200)
    with live(unseen) as (base, _):
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        problems = _watch(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-state='ready'][data-boundaries='drawn']", timeout=30_000)
        page.set_input_files("#files", [str(p) for p in _views(place, tmp_path, gps=False)])
        page.wait_for_selector("body[data-state='done']", timeout=60_000)
        warning = page.locator("#unseen")
        assert warning.is_visible() and "Unseen ground" in warning.inner_text()
        assert page.locator("#calibration").is_hidden()
        page.screenshot(path=str(ARTIFACTS / "serve_page_unseen.png"))
        assert not problems, problems
        page.close()


def test_the_page_shows_the_servers_error_message(browser, live_server, tmp_path):
    base, _ = live_server
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a photo at all")
    page = browser.new_page()
    page.goto(base + "/")
    page.wait_for_selector("body[data-state='ready']", timeout=30_000)
    page.set_input_files("#files", str(bogus))
    page.wait_for_selector("body[data-state='error']", timeout=30_000)
    assert "not a JPEG/PNG/WEBP image" in page.inner_text("#status")
    page.close()
