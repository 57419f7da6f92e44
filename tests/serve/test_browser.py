"""The page in a real browser: Playwright drives Debian's Chromium against a server on 127.0.0.1.

Upload photos, see the guess, the probability map and the EXIF truth on the vector map; a screenshot is saved
to ``$PIGEON_TEST_ARTIFACTS`` (default ``test-artifacts/``) as ``serve_page.png``. ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

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


def test_upload_photos_and_see_the_guess_on_the_map(browser, live_server, place, tmp_path):
    base, _ = live_server
    views, df = place
    row = df.iloc[1]
    paths = [_with_gps(views[1][0], float(row["lat"]), float(row["lon"]), tmp_path / "view0.jpg")]
    for i, data in enumerate(views[1][1:], start=1):
        (tmp_path / f"view{i}.jpg").write_bytes(data)
        paths.append(tmp_path / f"view{i}.jpg")

    page = browser.new_page(viewport={"width": 1280, "height": 760})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
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
    truth = page.inner_text("#truth")
    assert "EXIF GPS" in truth and "km away" in truth, truth
    assert "ms (decode" in page.inner_text("#timings")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "serve_page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    page.set_input_files("#files", [str(tmp_path / "view1.jpg")])  # a photo without GPS: no truth shown
    page.wait_for_function("document.querySelector('#thumbs').children.length === 1")
    page.wait_for_selector("body[data-state='done']", timeout=60_000)
    assert page.locator("#truth").is_hidden()
    assert all(url.startswith(base) or url.startswith(("blob:", "data:")) for url in requested), requested
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
