"""The batched JPEG decoders the device-decoding tests run with, and images that test it.

``torchvision.io.decode_jpeg`` only loads where torchvision was built for the installed torch (not beside the CPU
torch wheel with PyPI's torchvision, pigeon's own set-up): there the tests run with the real decoder. Everywhere
they also run with a stand-in of the same signature that decodes with Pillow (every pixel, as torchvision does), so
that pigeon's part of the path (header checks in the workers, the hand-off of bytes, orientation, geometry,
fallbacks, failures) is tested on every machine.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from pigeon.backbones import _batch_decode


def pillow_decode_jpeg(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """``decode_jpeg(datas, mode=RGB, device=device)`` done by Pillow; raises RuntimeError as torchvision does."""
    out = []
    for data in datas:
        try:
            with Image.open(io.BytesIO(data.numpy().tobytes()), formats=["JPEG"]) as img:
                rgb = np.asarray(img.convert("RGB"))
        except Exception as exc:
            raise RuntimeError(f"stand-in decode_jpeg: {exc}") from None
        out.append(torch.from_numpy(rgb.copy()).permute(2, 0, 1).to(device))
    return out


def torchvision_decodes() -> bool:
    """Whether torchvision's decode_jpeg runs here on the CPU."""
    from pigeon.errors import InputError

    try:
        _batch_decode.jpeg_decoder("cpu")
    except InputError:
        return False
    return True


#: parameters of a ``decoder`` fixture: the stand-in everywhere, torchvision's decoder where it loads
DECODERS = [pytest.param("stand-in", id="pillow-stand-in"),
            pytest.param("torchvision", id="torchvision", marks=pytest.mark.skipif(
                not torchvision_decodes(), reason="torchvision's image ops do not load beside this torch (needs the "
                "torchvision built for it)"))]


def use_decoder(monkeypatch, which: str, wrap: Callable | None = None) -> Callable:
    """Make pigeon decode JPEG batches with ``which`` (``"stand-in"`` or ``"torchvision"``), optionally wrapped."""
    decoder = pillow_decode_jpeg if which == "stand-in" else _batch_decode.jpeg_decoder("cpu")
    decoder = wrap(decoder) if wrap else decoder
    monkeypatch.setattr(_batch_decode, "jpeg_decoder", lambda device: decoder)
    return decoder


def refusing(bad: bytes) -> Callable[[Callable], Callable]:
    """A wrapper of a decoder that raises on the member whose bytes are ``bad`` (as nvJPEG does on files it
    cannot take) and records every member it was given in ``.seen``."""
    def wrap(decoder: Callable) -> Callable:
        def decode(datas, device):
            decode.seen += [d.numpy().tobytes() for d in datas]
            if any(d.numpy().tobytes() == bad for d in datas):
                raise RuntimeError("decode_jpeg: unsupported JPEG")
            return decoder(datas, device)

        decode.seen = []
        return decode

    return wrap


def photo(w: int, h: int, seed: int = 0, noise: float = 6.0) -> Image.Image:
    """A photo-like RGB image: smooth gradients plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([xx / w * 200 + 20 * seed % 50, yy / h * 180, (xx + yy) / (w + h) * 220], axis=-1)
    rgb += rng.normal(0, noise, rgb.shape).astype(np.float32)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def jpeg(img: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **{"quality": 92, **options})
    return buf.getvalue()


def without_quantisation_tables(data: bytes) -> bytes:
    """A JPEG whose DQT segments are cut out: its header still reads, no decoder can decode it."""
    out, i = bytearray(data[:2]), 2
    while i < len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if data[i + 1] != 0xDB:
            out += data[i:i + 2 + length]
        i += 2 + length
    return bytes(out + data[i:])
