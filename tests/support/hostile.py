"""A hostile-input corpus that the tests generate themselves, and the fixtures that write it to disk.

Each entry is a small file an attacker or a careless user could hand to pigeon: extreme aspect ratios (a 118-byte
40000x1 PNG), text-chunk bombs, headers that claim billions of pixels, huge ICC profiles and EXIF blocks,
truncated and polyglot files, animated and multi-page images, and large but legitimate images. ``readable`` says
whether pigeon should decode it (bounded) or refuse it with a one-line error; ``served`` whether the service,
which takes JPEG, PNG and WebP only, answers it with a prediction.

Use it by importing the fixtures into a test module: ``from tests.support.hostile import hostile_files  # noqa: F401``.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: A bound on the time one hostile file may take through any entry point (generous: the machine is shared).
SECONDS_PER_FILE = 5.0


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    readable: bool
    served: bool
    why: str


def _save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with(chunks: list[bytes], size: tuple[int, int] = (8, 8)) -> bytes:
    """A small valid PNG with ``chunks`` inserted before its image data."""
    png = _save(Image.new("RGB", size, (40, 90, 160)), "PNG")
    at = png.index(b"IDAT") - 4
    return png[:at] + b"".join(chunks) + png[at:]


def _png_header(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width x height``."""
    data = bytearray(_save(Image.new("L", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def _jpeg_header(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``width x height`` (the scan data stays 16x16)."""
    data = bytearray(_save(Image.new("RGB", (16, 16), (120, 60, 30)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _jpeg_with_segments(marker: bytes, payloads: list[bytes]) -> bytes:
    jpeg = _save(Image.new("RGB", (64, 48), (90, 140, 60)), "JPEG")
    segments = b"".join(marker + struct.pack(">H", len(p) + 2) + p for p in payloads)
    return jpeg[:2] + segments + jpeg[2:]


def _frames(n: int, size=(48, 48)) -> list[Image.Image]:
    return [Image.new("RGB", size, (i * 5 % 256, 100, 200 - i % 200)) for i in range(n)]


def photo_like(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A smooth, photo-like image (a colour gradient with mild noise)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([120 + 100 * np.sin(x / w * 6), 90 + 80 * np.cos(y / h * 5), 128 + 60 * np.sin((x + y) / w)], -1)
    return Image.fromarray(np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8))


@functools.cache
def corpus() -> tuple[Hostile, ...]:
    """Every hostile input (made once per test session, in memory)."""
    text_bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a" * (2 * 2**20), 9))
    many_texts = [_chunk(b"zTXt", f"k{i}".encode() + b"\x00\x00" + zlib.compress(b"b" * 1_000_000, 9))
                  for i in range(70)]  # each under Pillow's chunk limit, 70 MB together
    icc_bomb = _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"c" * (2 * 2**20), 9))
    exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + struct.pack(">H", 0xFFFF) + bytes(range(256)) * 16_000
    jpeg = _save(photo_like((320, 240)), "JPEG", quality=90)
    png = _save(photo_like((200, 150)), "PNG")
    big_photo = _save(photo_like((4000, 3000), seed=1), "JPEG", quality=85)
    big_flat = _save(Image.new("L", (6300, 6300), 128), "PNG")
    apng = _save(_frames(1)[0], "PNG", save_all=True, append_images=_frames(120)[1:], duration=20)
    items = [
        Hostile("wide.png", _save(Image.new("L", (40000, 1)), "PNG"), False, False, "40000x1 in 118 bytes"),
        Hostile("tall.png", _save(Image.new("L", (1, 40000)), "PNG"), False, False, "1x40000"),
        Hostile("wide.jpg", _save(Image.new("RGB", (8000, 8)), "JPEG"), False, False, "1000:1 JPEG"),
        Hostile("text_bomb.png", _png_with([text_bomb]), False, False, "zTXt inflating to 2 MB"),
        Hostile("text_memory_bomb.png", _png_with(many_texts), False, False, "70 zTXt chunks, 70 MB of text"),
        Hostile("claims_huge.png", _png_header(50_000, 50_000), False, False, "header claims 2.5 Gpx"),
        Hostile("claims_huge.jpg", _jpeg_header(60_000, 60_000), False, False, "SOF claims 3.6 Gpx"),
        Hostile("claims_big_truncated.png", _png_header(10_000, 9_000), False, False,
                "90 Mpx claimed (under the CLI's limit), no pixel data"),
        Hostile("icc_bomb.png", _png_with([icc_bomb]), False, False, "iCCP inflating to 2 MB"),
        Hostile("huge_icc.jpg", _jpeg_with_segments(b"\xff\xe2", [b"ICC_PROFILE\x00" + bytes([i + 1, 16]) +
                                                                 bytes(65_000) for i in range(16)]),
                True, True, "1 MB ICC profile in 16 APP2 segments"),
        Hostile("huge_exif.png", _png_with([_chunk(b"eXIf", exif[6:])]), True, True, "4 MB EXIF of garbage IFDs"),
        Hostile("huge_exif.jpg", _jpeg_with_segments(b"\xff\xe1", [exif[:65_000]]), True, True, "64 KB EXIF"),
        Hostile("truncated.jpg", jpeg[: len(jpeg) // 2], False, False, "half a JPEG"),
        Hostile("truncated.png", png[: len(png) // 2], False, False, "half a PNG"),
        Hostile("polyglot_zip.jpg", jpeg + b"PK\x03\x04" + bytes(2000), True, True, "a JPEG with a ZIP appended"),
        Hostile("polyglot_html.png", b"<html><script>alert(1)</script>" + png, False, False, "HTML, then a PNG"),
        Hostile("polyglot_png_jpeg.png", png[:33] + jpeg, False, False, "a PNG header on JPEG data"),
        Hostile("animated.gif", _save(_frames(1)[0], "GIF", save_all=True, append_images=_frames(200)[1:]),
                True, False, "200-frame GIF (the service takes no GIF)"),
        Hostile("animated.png", apng, True, True, "120-frame APNG"),
        Hostile("animated.webp", _save(_frames(1)[0], "WEBP", save_all=True, append_images=_frames(60)[1:]),
                True, True, "60-frame WebP"),
        Hostile("multipage.tiff", _save(_frames(1)[0], "TIFF", save_all=True, append_images=_frames(5)[1:]),
                True, False, "5-page TIFF (the service takes no TIFF)"),
        Hostile("big_flat.png", big_flat, True, True, "6300x6300 in a few dozen KB"),
        Hostile("photo_12mp.jpg", big_photo, True, True, "a 12 MP JPEG (decoded in draft mode)"),
    ]
    return tuple(items)


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every hostile file into ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for item in corpus():
        paths[item.name] = folder / item.name
        paths[item.name].write_bytes(item.data)
    return paths


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    """The corpus on disk: file name -> path."""
    return write_corpus(tmp_path_factory.mktemp("hostile"))
