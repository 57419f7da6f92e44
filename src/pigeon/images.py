"""Bounded image decoding: every photo that embedding, prediction or the service reads goes through this module.

Work per image is bounded before any pixel is decoded. :func:`open_image` reads the header only and refuses an
image with more pixels than the decompression-bomb limit or a more extreme aspect ratio than
:attr:`DecodeConfig.max_aspect_ratio`. Given the short side a model needs (``target``, the backbone's resize size),
a JPEG is then decoded by libjpeg's DCT scaling (Pillow's draft mode) at the smallest of 1/8, 1/4, 1/2 or 1/1 of
its size that keeps the short side at least ``reducing_gap * target``, and other formats are shrunk by a whole factor
(``Image.reduce``) right after decoding, so what a stage holds per image is bounded by the model's input, not by
the file (a JPEG is never decoded larger; other formats are decoded once at their size, within the pixel limit). ``DecodeConfig(exact=True)`` decodes every pixel instead (the path of the ``transformers`` processors).

``DecodeConfig(device="cuda")`` (or ``"cpu"``) hands JPEGs to a batched decoder instead (torchvision's, in
:mod:`pigeon.backbones._batch_decode`): the header is still read and checked here, and
:meth:`PendingImage.jpeg_bytes` gives the file's bytes and :attr:`PendingImage.orientation` its EXIF orientation
when the file is a complete 8-bit RGB or greyscale JPEG; any other image is decoded here as before.

Bad files never crash a job with a traceback: a missing, unknown, corrupt, truncated, oversized or oddly shaped
file raises a one-line :class:`~pigeon.errors.InputError` that names the file, the reason and the fix, whatever
error Pillow's decoders raise. Whatever the input mode (CMYK, greyscale, 16-bit, palette, with or without alpha),
the result is an 8-bit RGB image, upright per its EXIF orientation. Encoded bytes held in memory (an upload to
``pigeon serve``) go through the same checks and are never written to disk.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from pigeon._config import JsonConfig
from pigeon.errors import InputError

__all__ = ["DEFAULT_MAX_ASPECT_RATIO", "DEFAULT_MAX_PIXELS", "CorruptImageError", "DecodeConfig",
           "ImageShapeError", "ImageTooLargeError", "PendingImage", "UnreadableImageError", "get_max_pixels",
           "load_image", "open_image", "set_max_pixels"]

#: Default decompression-bomb limit in pixels (width x height): PIL's own hard limit, ~13400 x 13400.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
#: Default limit of long side / short side: wider than the widest phone panoramas, far from a 40000x1 strip.
DEFAULT_MAX_ASPECT_RATIO = 20.0
#: What Pillow's decoders raise on malformed data (its fuzzers' list, plus the text-chunk and bomb limits).
DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
                  ZeroDivisionError, OverflowError, Image.DecompressionBombError)
#: Text a PNG may hold in all its chunks, decompressed (Pillow's default is 64 MB; a photo's metadata is far less, and
#: a file of many small compressed chunks that inflate to the limit takes a second to refuse at 64 MB).
MAX_PNG_TEXT_BYTES = 8 * 2**20
PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, MAX_PNG_TEXT_BYTES)
#: EXIF larger than this is ignored (orientation as stored, no GPS): a camera's EXIF fits the 64 KB of a JPEG
#: segment, and parsing megabytes of crafted IFDs holds the interpreter for seconds.
MAX_EXIF_BYTES = 256 * 1024
_max_pixels: int | None = DEFAULT_MAX_PIXELS
_BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white
#: JPEG modes a batched decoder (torchvision's ``decode_jpeg``, RGB output) turns into the RGB Pillow gives;
#: CMYK / YCCK JPEGs are decoded by Pillow.
_BATCH_JPEG_MODES = {"RGB", "L"}
#: A JPEG file larger than this many bytes per pixel (plus 1 MB of metadata) is decoded by Pillow, which reads only
#: what it needs: a batched decoder is handed the whole file (quality 100 with 4:4:4 colour is about 2 bytes a pixel).
_MAX_JPEG_BYTES_PER_PIXEL = 4
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F"}  # modes Image.reduce averages right
#: EXIF orientation -> the transposition that makes the image upright (the EXIF 2.3 table, as ImageOps uses).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


@dataclass(frozen=True)
class DecodeConfig(JsonConfig):
    """How images are decoded for a model input (recorded in an embeddings store's ``meta.json``).

    Attributes:
        exact: decode every pixel (no JPEG draft mode, no reduce) and resize the whole image, as the
            ``transformers`` processors do; several times slower on large photos (``benchmarks/embed.py``).
        reducing_gap: decode down to no less than this many times the resize target, then resize (Pillow's
            ``reducing_gap``): 1 is the fastest, 2 (the default) agrees better with the exact path.
        max_aspect_ratio: refuse images whose long side is more than this many times the short side.
        device: None (the default): every image is decoded by Pillow as above (in the embedding's DataLoader
            workers). A torch device (``"cuda"``, ``"cuda:N"``, ``"cpu"``): JPEGs are decoded in batches by
            ``torchvision.io.decode_jpeg`` on that device (nvJPEG on CUDA) and resized there (the whole image, as
            with ``exact``; ``reducing_gap`` does not apply), after the workers checked their headers; other files
            are decoded by Pillow. Used by :func:`pigeon.embed.embed_manifest` and ``embed_shards_from``.
    """

    exact: bool = False
    reducing_gap: float = 2.0
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    device: str | None = None

    def __post_init__(self) -> None:
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", str(self.device)):
            raise InputError(f"unknown decode device {self.device!r}; use cuda, cuda:N or cpu (torchvision's "
                             "decoder), or none (Pillow)")
        if not self.max_aspect_ratio >= 1:
            raise InputError(f"max_aspect_ratio must be >= 1 (long side / short side), got {self.max_aspect_ratio}")
        if not self.reducing_gap >= 1:
            raise InputError(f"reducing_gap must be >= 1, got {self.reducing_gap}")


class _Fixes(NamedTuple):
    """What an error message tells the user to do, for a file on disk or for bytes (an upload)."""

    unreadable: str
    header: str
    corrupt: str
    too_large: str
    shape: str


_FILE_FIXES = _Fixes("re-export it as JPEG or PNG, or drop it from the manifest",
                     "re-export it (as JPEG, which drops oversized metadata), or drop it from the manifest",
                     "re-download or re-export the file, or drop it from the manifest",
                     "downscale it, or raise the limit with pigeon.images.set_max_pixels(N) or --max-pixels N",
                     "crop it (a panorama into its views), drop it from the manifest, or raise "
                     "DecodeConfig.max_aspect_ratio")
_BYTES_FIXES = _Fixes("send a JPEG, PNG or WebP image", "re-export it before sending (as JPEG, which drops oversized "
                      "metadata)", "send the complete file again", "downscale it before sending",
                      "crop it before sending (a panorama into its views)")


class UnreadableImageError(InputError):
    """The data is not an image of an accepted format (detected from its content, not its name)."""


class CorruptImageError(InputError):
    """A known format whose data cannot be decoded: truncated, corrupt, or over a decoder limit (text-chunk bombs)."""


class ImageTooLargeError(InputError):
    """The image has more pixels than the decompression-bomb limit (found from its header, before decoding)."""


class ImageShapeError(InputError):
    """The image's aspect ratio is more extreme than the limit (found from its header, before decoding)."""


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


class PendingImage:
    """An image whose header is read and checked, and whose decoding is planned but not done (see :func:`open_image`).

    Attributes:
        label: what error messages call it.
        size: its stored (width, height), before EXIF orientation.
        decoded_size: the (width, height) that decoding will allocate (smaller than ``size`` in JPEG draft mode).
        exif: after :meth:`load`, the image's EXIF (empty when it has none or it cannot be parsed).
    """

    def __init__(self, img: Image.Image, label, fixes: _Fixes, target: int | None, decode: DecodeConfig,
                 from_file: bool, source: str | os.PathLike | bytes | None = None) -> None:
        self._img, self.label, self._fixes, self._source = img, label, fixes, source
        # the short side decoding must keep: reducing_gap x the caller's target
        self._target = None if decode.exact or target is None else target * decode.reducing_gap
        self._from_file = from_file
        self.size: tuple[int, int] = img.size
        self.exif = Image.Exif()
        if from_file and self._target and isinstance(img, JpegImagePlugin.JpegImageFile):
            _draft(img, self._target)
        self.decoded_size: tuple[int, int] = img.size

    @property
    def pixels(self) -> int:
        """Pixels that decoding allocates: what a memory budget counts."""
        return self.decoded_size[0] * self.decoded_size[1]

    @property
    def orientation(self) -> int:
        """The EXIF orientation (1 to 8; 1: stored upright), from the header (a JPEG's EXIF precedes its pixels)."""
        if not self.exif and self._from_file:
            self.exif = _read_exif(self._img)
        value = self.exif.get(ExifTags.Base.Orientation, 1)
        return value if value in range(1, 9) else 1

    def jpeg_bytes(self) -> bytes | None:
        """The encoded file, for a batched JPEG decoder instead of :meth:`load`; None when Pillow must decode it.

        Bytes only for a complete (an end-of-image marker after its last scan) 8-bit RGB or greyscale JPEG of at
        most ``4 x pixels + 1 MB`` bytes, read from a file or bytes; the image is then closed. Its EXIF orientation
        is :attr:`orientation`.
        """
        img = self._img
        if (not self._from_file or self._source is None or not isinstance(img, JpegImagePlugin.JpegImageFile)
                or img.mode not in _BATCH_JPEG_MODES or getattr(img, "bits", 8) != 8):
            return None
        limit = _MAX_JPEG_BYTES_PER_PIXEL * self.size[0] * self.size[1] + 2**20
        if isinstance(self._source, (bytes, bytearray, memoryview)):
            data = bytes(self._source) if len(self._source) <= limit else None
        else:
            data = Path(self._source).read_bytes() if os.path.getsize(self._source) <= limit else None
        if data is None or data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):  # truncated (or data after it)
            return None
        if not self.exif:  # read before the file is closed
            self.exif = _read_exif(img)
        img.close()
        return data

    def load(self) -> Image.Image:
        """Decode, shrink to the target, turn upright and convert to 8-bit RGB.

        Raises:
            CorruptImageError: the decoder failed (truncated or corrupt data, a decoder limit).
        """
        img = self._img
        try:
            if self._from_file:
                img.load()
                self.exif = _read_exif(img)
            out = _shrink(img, self._target) if self._target else img
            method = _UPRIGHT.get(self.exif.get(ExifTags.Base.Orientation, 1))
            if method is not None:
                out = out.transpose(method)
            out = _to_rgb(out)
        except DECODER_ERRORS as exc:
            if self._from_file:
                img.close()
            raise CorruptImageError(f"{self.label}: not a readable image: truncated or corrupt image data "
                                    f"({_short(exc)}); {self._fixes.corrupt}") from None
        if self._from_file and out is not img:
            img.close()
        return out


def open_image(src: str | os.PathLike | bytes | Image.Image, *, target: int | None = None,
               decode: DecodeConfig | None = None, max_pixels: int | None = None,
               formats: Sequence[str] | None = None, name: str | None = None) -> PendingImage:
    """Read an image's header and check it; decoding is left to :meth:`PendingImage.load`.

    Args:
        src: a path, the bytes of an encoded image (kept in memory), or an already opened ``PIL.Image.Image``.
        target: the short side the caller will resize to; decoding stops at the smallest size at least
            ``decode.reducing_gap`` times this large (None: decode every pixel).
        decode: exact decoding and the aspect-ratio limit (default :class:`DecodeConfig`).
        max_pixels: refuse images with more pixels than this; defaults to :func:`get_max_pixels`.
        formats: accept only these PIL formats, detected from the content (e.g. ``("JPEG", "PNG")``); all by default.
        name: what error messages call ``src`` when it is bytes (e.g. ``"files[0]"``).

    Raises:
        UnreadableImageError: not an image (of an accepted format).
        CorruptImageError: a known format whose header cannot be read (e.g. a text-chunk bomb).
        ImageTooLargeError: more pixels than the limit.
        ImageShapeError: a more extreme aspect ratio than the limit.
        InputError: the file is missing or cannot be opened.
    """
    decode = decode or DecodeConfig()
    if isinstance(src, Image.Image):
        label, fixes, img = name or "image", _FILE_FIXES, src
    else:
        if isinstance(src, (bytes, bytearray, memoryview)):
            label, fp, fixes = name or "image", io.BytesIO(src), _BYTES_FIXES
        else:
            label = fp = Path(src)
            fixes = _FILE_FIXES
            if not fp.is_file():
                raise InputError(f"{fp}: image file not found; fix the path (manifest paths are relative to its "
                                 "folder)")
        img = _open(fp, label, formats, fixes)
        _check_pixels(img, label, _max_pixels if max_pixels is None else max_pixels, fixes)
    _check_shape(img, label, decode.max_aspect_ratio, fixes)
    return PendingImage(img, label, fixes, target, decode, from_file=img is not src,
                        source=None if isinstance(src, Image.Image) else src)


def load_image(src: str | os.PathLike | bytes | Image.Image, *, target: int | None = None,
               decode: DecodeConfig | None = None, max_pixels: int | None = None,
               formats: Sequence[str] | None = None, name: str | None = None) -> Image.Image:
    """Open an image file, encoded bytes or a PIL image and return it as 8-bit RGB, upright.

    :func:`open_image` followed by :meth:`PendingImage.load`; see there for the arguments and errors. With a
    ``target`` the result's short side is at least ``reducing_gap * target`` (below twice that when larger), else
    every pixel is decoded. A PIL image is checked, shrunk and converted, not turned by its EXIF orientation.
    """
    return open_image(src, target=target, decode=decode, max_pixels=max_pixels, formats=formats, name=name).load()


def _open(fp, label, formats: Sequence[str] | None, fixes: _Fixes) -> Image.Image:
    """Read the header only, checking the format before any pixel data is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb warnings (checked below) and corrupt-metadata notes
            return Image.open(fp, formats=None if formats is None else list(formats))
    except Image.DecompressionBombError:  # over PIL's own hard limit, twice MAX_IMAGE_PIXELS
        raise _too_large(label, None, 2 * (Image.MAX_IMAGE_PIXELS or 0), fixes) from None
    except UnidentifiedImageError:
        kinds = f"a {'/'.join(formats)} image" if formats else "a readable image"
        raise UnreadableImageError(f"{label}: not {kinds} (unknown format or corrupt header); "
                                   f"{fixes.unreadable}") from None
    except PermissionError as exc:
        raise InputError(f"{label}: cannot open image ({_short(exc)}); check the file's permissions") from None
    except DECODER_ERRORS as exc:  # a known format whose header is broken or over a decoder limit
        raise CorruptImageError(f"{label}: not a readable image: its header cannot be read ({_short(exc)}); "
                                f"{fixes.header}") from None


def _check_pixels(img: Image.Image, label, limit: int | None, fixes: _Fixes) -> None:
    if limit is not None and img.width * img.height > limit:
        img.close()
        raise _too_large(label, img.size, limit, fixes)


def _check_shape(img: Image.Image, label, limit: float, fixes: _Fixes) -> None:
    w, h = img.size
    ratio = max(w, h) / max(1, min(w, h))
    if min(w, h) < 1 or ratio > limit:
        raise ImageShapeError(f"{label}: image {w}x{h} has an aspect ratio of {ratio:,.1f}:1, over the "
                              f"{limit:g}:1 limit; {fixes.shape}")


def _too_large(label, size: tuple[int, int] | None, limit: int | None, fixes: _Fixes) -> ImageTooLargeError:
    dims = f"{size[0]}x{size[1]} pixels " if size else ""
    return ImageTooLargeError(f"{label}: image {dims}exceeds the {limit or Image.MAX_IMAGE_PIXELS:,}-pixel limit "
                              f"(decompression-bomb guard); {fixes.too_large}")


def _draft(img: JpegImagePlugin.JpegImageFile, target: float) -> None:
    """Ask libjpeg for the smallest DCT scale (1/8, 1/4, 1/2) whose short side stays at least ``target``."""
    w, h = img.size
    short = min(w, h)
    if short >= 2 * target:
        img.draft(img.mode, (math.ceil(w * target / short), math.ceil(h * target / short)))


def _shrink(img: Image.Image, target: float) -> Image.Image:
    """Average whole blocks of pixels (``Image.reduce``) down to the smallest size with short side >= ``target``."""
    factor = int(min(img.size) // target)
    if factor < 2:
        return img
    if img.mode not in _REDUCIBLE:  # palette, 1-bit, 16-bit: averaging their raw values would be wrong
        img = _to_rgb(img)
    return img.reduce(factor)


def _read_exif(img: Image.Image) -> Image.Exif:
    """The EXIF of a decoded image; an unparsable or oversized block is treated as none (the photo itself is fine)."""
    if len(img.info.get("exif") or b"") > MAX_EXIF_BYTES:
        return Image.Exif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": the photo itself is fine
            return img.getexif()
    except DECODER_ERRORS:
        return Image.Exif()


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
