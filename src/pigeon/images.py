"""Safe image loading: every photo a stage reads goes through :func:`load_image`.

Bad files never crash a job with a traceback: a missing, corrupt, truncated or oversized file raises a one-line
:class:`~pigeon.errors.InputError` that names the file and the fix. Whatever the input mode (CMYK, greyscale,
16-bit, palette, with or without alpha), the result is an 8-bit RGB image, upright per its EXIF orientation.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pigeon.errors import InputError

__all__ = ["DEFAULT_MAX_PIXELS", "get_max_pixels", "load_image", "set_max_pixels"]

#: Default decompression-bomb limit in pixels (width x height): PIL's own hard limit, ~13400 x 13400.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
_max_pixels: int | None = DEFAULT_MAX_PIXELS
_BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white


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


def load_image(src: str | os.PathLike | Image.Image, *, max_pixels: int | None = None) -> Image.Image:
    """Open an image file (or take a PIL image) and return it as 8-bit RGB.

    Args:
        src: a path, or an already opened ``PIL.Image.Image``.
        max_pixels: refuse files with more pixels than this; defaults to :func:`get_max_pixels`.

    Returns:
        A fully decoded ``PIL.Image.Image`` in mode ``"RGB"``.

    Raises:
        InputError: the file is missing, not an image, truncated or corrupt, or larger than the limit.
    """
    if isinstance(src, Image.Image):
        return _to_rgb(src)
    path = Path(src)
    if not path.is_file():
        raise InputError(f"{path}: image file not found; fix the path (manifest paths are relative to its folder)")
    limit = _max_pixels if max_pixels is None else max_pixels
    img = _open(path, limit)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        img.close()
        raise InputError(f"{path}: truncated or corrupt image data ({_short(exc)}); "
                         "re-download or re-export the file, or drop it from the manifest") from None
    return _to_rgb(img)


def _open(path: Path, limit: int | None) -> Image.Image:
    """Read the header only, checking the pixel count before any pixel data is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError:
        raise _too_large(path, None, limit) from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (unknown format or corrupt header); "
                         "re-export it as JPEG or PNG, or drop it from the manifest") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open image ({_short(exc)}); check the file and its permissions") from None
    if limit is not None and img.width * img.height > limit:
        img.close()
        raise _too_large(path, img.size, limit)
    return img


def _too_large(path: Path, size: tuple[int, int] | None, limit: int | None) -> InputError:
    dims = f"{size[0]}x{size[1]} pixels " if size else ""
    return InputError(f"{path}: image {dims}exceeds the {limit or Image.MAX_IMAGE_PIXELS:,}-pixel limit "
                      "(decompression-bomb guard); downscale it, or raise the limit with "
                      "pigeon.images.set_max_pixels(N) or --max-pixels N")


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
