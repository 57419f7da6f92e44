"""Safe image loading: every photo a stage reads goes through :func:`load_image`.

Bad files never crash a job with a traceback: a missing, corrupt, truncated or oversized file raises a one-line
:class:`~pigeon.errors.InputError` that names the file and the fix. Whatever the input mode (CMYK, greyscale,
16-bit, palette, with or without alpha), the result is an 8-bit RGB image, upright per its EXIF orientation. Encoded bytes held in memory (an upload to ``pigeon serve``) go through the
same checks and are never written to disk.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pigeon.errors import InputError

__all__ = ["DEFAULT_MAX_PIXELS", "ImageTooLargeError", "UnreadableImageError", "get_max_pixels", "load_image",
           "set_max_pixels"]

#: Default decompression-bomb limit in pixels (width x height): PIL's own hard limit, ~13400 x 13400.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
_max_pixels: int | None = DEFAULT_MAX_PIXELS
_BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white


class _Fixes(NamedTuple):
    """What an error message tells the user to do, for a file on disk or for bytes (an upload)."""

    unreadable: str
    corrupt: str
    too_large: str


_FILE_FIXES = _Fixes("re-export it as JPEG or PNG, or drop it from the manifest",
                     "re-download or re-export the file, or drop it from the manifest",
                     "downscale it, or raise the limit with pigeon.images.set_max_pixels(N) or --max-pixels N")
_BYTES_FIXES = _Fixes("send a JPEG, PNG or WebP image", "send the complete file again", "downscale it before sending")


class UnreadableImageError(InputError):
    """The data is not an image of an accepted format (detected from its content, not its name)."""


class ImageTooLargeError(InputError):
    """The image has more pixels than the decompression-bomb limit (found from its header, before decoding)."""


def set_max_pixels(limit: int | None) -> None:
    """Set the decompression-bomb limit (pixels) for all later :func:`load_image` calls; None disables it.

    PIL's own guard is lifted to match, so a limit above PIL's default takes effect too.
    """
    global _max_pixels
    if limit is not None and limit < 1:
        raise InputError(f"max pixels must be a positive number of pixels, got {limit}")
    _max_pixels = limit
    Image.MAX_IMAGE_PIXELS = None if limit is None else max(limit, Image.MAX_IMAGE_PIXELS or 0)


def get_max_pixels() -> int | None:
    """The current decompression-bomb limit in pixels (None: no limit)."""
    return _max_pixels


def load_image(src: str | os.PathLike | bytes | Image.Image, *, max_pixels: int | None = None,
               formats: Sequence[str] | None = None, name: str | None = None) -> Image.Image:
    """Open an image file, encoded bytes or a PIL image and return it as 8-bit RGB.

    Args:
        src: a path, the bytes of an encoded image (kept in memory), or an already opened ``PIL.Image.Image``.
        max_pixels: refuse images with more pixels than this; defaults to :func:`get_max_pixels`.
        formats: accept only these PIL formats, detected from the content (e.g. ``("JPEG", "PNG")``); all by default.
        name: what error messages call ``src`` when it is bytes (e.g. ``"files[0]"``).

    Returns:
        A fully decoded ``PIL.Image.Image`` in mode ``"RGB"``.

    Raises:
        UnreadableImageError: not an image (of an accepted format).
        ImageTooLargeError: more pixels than the limit (checked from the header, before any decoding).
        InputError: the file is missing, or the image is truncated or corrupt.
    """
    if isinstance(src, Image.Image):
        return _to_rgb(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        label, fp, fixes = name or "image", io.BytesIO(src), _BYTES_FIXES
    else:
        label = fp = Path(src)
        fixes = _FILE_FIXES
        if not fp.is_file():
            raise InputError(f"{fp}: image file not found; fix the path (manifest paths are relative to its folder)")
    limit = _max_pixels if max_pixels is None else max_pixels
    img = _open(fp, label, limit, formats, fixes)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        img.close()
        raise InputError(f"{label}: truncated or corrupt image data ({_short(exc)}); {fixes.corrupt}") from None
    return _to_rgb(img)


def _open(fp, label, limit: int | None, formats: Sequence[str] | None, fixes: _Fixes) -> Image.Image:
    """Read the header only, checking the format and the pixel count before any pixel data is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=None if formats is None else list(formats))
    except Image.DecompressionBombError:
        raise _too_large(label, None, limit, fixes) from None
    except UnidentifiedImageError:
        kinds = f"a {'/'.join(formats)} image" if formats else "a readable image"
        raise UnreadableImageError(f"{label}: not {kinds} (unknown format or corrupt header); "
                                   f"{fixes.unreadable}") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot open image ({_short(exc)}); check the file and its permissions") from None
    if limit is not None and img.width * img.height > limit:
        img.close()
        raise _too_large(label, img.size, limit, fixes)
    return img


def _too_large(label, size: tuple[int, int] | None, limit: int | None, fixes: _Fixes) -> ImageTooLargeError:
    dims = f"{size[0]}x{size[1]} pixels " if size else ""
    return ImageTooLargeError(f"{label}: image {dims}exceeds the {limit or Image.MAX_IMAGE_PIXELS:,}-pixel limit "
                              f"(decompression-bomb guard); {fixes.too_large}")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; alpha is composited onto white, 16-bit/float are rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(img, dtype=np.float64)
        lo, hi = float(values.min()), float(values.max())
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
        return Image.fromarray(scaled.round().astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
