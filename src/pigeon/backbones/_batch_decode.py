"""Batched JPEG decoding on a torch device (``DecodeConfig(device="cuda")``, or ``"cpu"``): the DataLoader workers
check, the embedding process decodes.

A worker calls :func:`stage` (``ImageTransform.stage``) on each image: :mod:`pigeon.images` reads and checks its
header as always (format, pixel limit, aspect ratio: bounded before any work) and, for a complete 8-bit RGB or
greyscale JPEG, the worker hands on its encoded bytes (a uint8 tensor) and EXIF orientation as an
:class:`EncodedJpeg` instead of decoding it; any other image (PNG, WebP, CMYK, a truncated JPEG) is decoded by Pillow
in the worker as without a device. :meth:`StagedBatch.of` groups a batch of both kinds. In the embedding process
:func:`finish` (``ImageTransform.finish``) decodes the batch's JPEGs in one ``torchvision.io.decode_jpeg`` call on
the device (batched nvJPEG on CUDA), turns each upright, resizes the whole image's shortest edge to the transform's
resize size (``torch.nn.functional.interpolate``, antialiased: PIL's filters; on 8-bit pixels on the CPU, PIL's
integer algorithm, and in float rounded to 8 bits on CUDA), takes
the centre crop (:meth:`ImageTransform.geometry`, the one rule of both paths) and normalises it there. When the
batched call fails its members are decoded one by one, and a member torchvision refuses is decoded by Pillow: only
a file Pillow cannot decode either becomes a failure, that image's one-line error.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from pigeon.errors import InputError, PigeonError

if TYPE_CHECKING:
    from pigeon.backbones._transforms import ImageSource, ImageTransform

#: ``BackboneCfg.interpolation`` -> the ``interpolate`` mode (antialiased like PIL's filters, bicubic with a = -0.5)
MODES = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest-exact"}
#: ``decode_jpeg`` as :func:`finish` calls it: ``(encoded uint8 tensors, device) -> uint8 (3, H, W) tensors``
JpegDecoder = Callable[[list[torch.Tensor], torch.device], Sequence[torch.Tensor]]


class EncodedJpeg(NamedTuple):
    """A JPEG whose header a worker checked, to be decoded on the device.

    Attributes:
        data: the encoded file, uint8 ``(n_bytes,)``.
        orientation: its EXIF orientation (1: upright).
        label: what error messages call it (the path, or the ``name`` given for bytes).
        path: the file it was read from, for Pillow's fallback (None: bytes, decoded from ``data``).
    """

    data: torch.Tensor
    orientation: int
    label: str
    path: str | None


class StagedBatch(NamedTuple):
    """A batch as the workers hand it on: images Pillow decoded (stacked) and JPEGs left encoded, by key."""

    pixel_keys: list[Hashable]
    pixels: torch.Tensor | None
    encoded_keys: list[Hashable]
    encoded: list[EncodedJpeg]

    @classmethod
    def of(cls, keys: Sequence[Hashable], items: Sequence[torch.Tensor | EncodedJpeg]) -> StagedBatch:
        """Group ``items`` (what :func:`stage` returned for each key) into decoded pixels and encoded JPEGs."""
        decoded = [(k, x) for k, x in zip(keys, items) if not isinstance(x, EncodedJpeg)]
        encoded = [(k, x) for k, x in zip(keys, items) if isinstance(x, EncodedJpeg)]
        return cls([k for k, _ in decoded], torch.stack([x for _, x in decoded]) if decoded else None,
                   [k for k, _ in encoded], [x for _, x in encoded])

    @property
    def n_images(self) -> int:
        return len(self.pixel_keys) + len(self.encoded_keys)


def stage(transform: ImageTransform, src: ImageSource, **options) -> torch.Tensor | EncodedJpeg:
    """In a worker: check the header; a JPEG the device decodes stays encoded, any other image is decoded here."""
    pending = transform.open(src, **options)
    data = pending.jpeg_bytes()
    if data is None:
        return transform.pixels(pending.load())
    path = None if isinstance(src, (bytes, bytearray, memoryview)) else os.fspath(src)
    return EncodedJpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), pending.orientation, str(pending.label),
                       path)


def finish(transform: ImageTransform, batch: StagedBatch
           ) -> tuple[list[Hashable], torch.Tensor | None, list[tuple[Hashable, str]]]:
    """In the embedding process: decode the batch's JPEGs on the device and preprocess them.

    Returns:
        ``(keys, pixels, failures)``: the keys of the images in ``pixels`` (float32 ``(N, 3, S, S)``, on the
        decode device when the batch held JPEGs), and ``(key, one-line error)`` for each image that failed.
    """
    if not batch.encoded:
        return list(batch.pixel_keys), batch.pixels, []
    device = torch.device(transform.decode.device)
    images = _decode(jpeg_decoder(str(device)), [e.data for e in batch.encoded], device)
    keys, pixels, failures = list(batch.pixel_keys), [], []
    for key, item, img in zip(batch.encoded_keys, batch.encoded, images):
        try:
            pixels.append(_pixels(transform, img, item.orientation) if img is not None else _by_pillow(transform, item))
            keys.append(key)
        except PigeonError as exc:
            failures.append((key, str(exc)))
    out = [batch.pixels.to(device)] if batch.pixels is not None else []
    out += [torch.stack(pixels)] if pixels else []
    return keys, torch.cat(out) if out else None, failures


def _decode(decoder: JpegDecoder, datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """All of ``datas`` in one call; when it fails, one by one (None: that member cannot be decoded by torchvision)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libjpeg's notes on recoverable data ("Corrupt JPEG data: ...")
        try:
            return list(decoder(datas, device))
        except Exception:  # one bad member fails the whole batched call: find it
            return [_decode_one(decoder, data, device) for data in datas]


def _decode_one(decoder: JpegDecoder, data: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    try:
        return decoder([data], device)[0]
    except Exception:  # whatever torchvision raises, Pillow gets the file next
        return None


def _by_pillow(transform: ImageTransform, item: EncodedJpeg) -> torch.Tensor:
    """A JPEG torchvision refused, decoded by Pillow (raises its one-line error when Pillow cannot either)."""
    if item.path is not None:
        return transform.pixels(transform.load(item.path))
    return transform.pixels(transform.load(item.data.numpy().tobytes(), name=item.label))


def upright(img: torch.Tensor, orientation: int) -> torch.Tensor:
    """``(C, H, W)`` turned upright per its EXIF orientation (as ``PIL.ImageOps.exif_transpose``)."""
    if orientation in (2, 4):
        return img.flip(-1 if orientation == 2 else -2)
    if orientation == 3:
        return img.flip(-1, -2)
    if orientation in (5, 7):  # transpose (5), transverse (7)
        return img.transpose(-1, -2) if orientation == 5 else img.flip(-1, -2).transpose(-1, -2)
    if orientation in (6, 8):  # rotate 90 clockwise (6), counter-clockwise (8)
        return torch.rot90(img, -1 if orientation == 6 else 1, dims=(-2, -1))
    return img


def _pixels(transform: ImageTransform, img: torch.Tensor, orientation: int) -> torch.Tensor:
    """A decoded uint8 ``(3, H, W)`` image -> the normalised float32 centre crop ``(3, S, S)``, on its device."""
    img = upright(img, orientation)
    h, w = img.shape[-2:]
    (new_w, new_h), left, top = transform.geometry(w, h)
    x = img[None]
    if (new_w, new_h) != (w, h):
        x = resize(x, (new_h, new_w), MODES[transform.cfg.interpolation], eight_bit=x.device.type == "cpu")
    x = x.float()
    crop = transform.cfg.image_size
    x = x[0, :, max(top, 0):top + crop, max(left, 0):left + crop]
    pad_left, pad_top = max(0, -left), max(0, -top)
    if x.shape[-2:] != (crop, crop):  # a crop wider than the resized image: black, as PIL's crop pads
        x = F.pad(x, (pad_left, crop - pad_left - x.shape[-1], pad_top, crop - pad_top - x.shape[-2]))
    mean, std = _stats(tuple(transform.cfg.mean), tuple(transform.cfg.std), x.device)
    return (x * (1 / 255) - mean) / std


def resize(x: torch.Tensor, size: tuple[int, int], mode: str, eight_bit: bool) -> torch.Tensor:
    """Resize uint8 ``(1, 3, H, W)`` to ``size`` (h, w) as PIL does: with torch's 8-bit kernels (PIL's integer
    algorithm; CPU only, 10x the float speed there) or in float, rounded to 8 bits. Returns uint8 or float."""
    antialias = mode != "nearest-exact"
    if eight_bit:  # channels-last: the kernels' layout, and how the CPU decoder lays out its pixels (no copy)
        return F.interpolate(x.contiguous(memory_format=torch.channels_last), size=size, mode=mode,
                             antialias=antialias)
    return F.interpolate(x.float(), size=size, mode=mode, antialias=antialias).round_().clamp_(0, 255)


@functools.lru_cache(maxsize=8)
def _stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(mean, device=device).view(3, 1, 1), torch.tensor(std, device=device).view(3, 1, 1))


def check(transform: ImageTransform) -> None:
    """Raise a one-line error now when the transform's decode device cannot be used (no-op without one)."""
    if transform.decode.device is None:
        return
    if transform.cfg.interpolation not in MODES:
        raise InputError(f"decoding on {transform.decode.device} resizes with torch, which has no "
                         f"{transform.cfg.interpolation} filter; leave out --decode-device (DecodeConfig.device)")
    jpeg_decoder(str(torch.device(transform.decode.device)))


@functools.lru_cache(maxsize=8)
def jpeg_decoder(device: str) -> JpegDecoder:
    """``torchvision.io.decode_jpeg`` (RGB output) for ``device``, checked on a tiny JPEG; else a one-line error."""
    dev = torch.device(device)
    keep = "or leave out --decode-device (DecodeConfig.device) to decode with Pillow"
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"decode device {device!r} requested but CUDA is not available here; use --decode-device "
                         f"cpu, {keep}")
    try:
        import torchvision
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception as exc:  # not installed, or broken beside this torch
        raise InputError(f"decoding on {device} needs torchvision ({type(exc).__name__}: {_first(exc)}); pip install "
                         f"the torchvision release built for torch {torch.__version__}, {keep}") from None

    def decode(datas: list[torch.Tensor], dev: torch.device) -> list[torch.Tensor]:
        return decode_jpeg(datas, mode=ImageReadMode.RGB, device=dev)

    try:
        decode([_tiny_jpeg()], dev)
    except Exception as exc:
        which = (f"its image ops do not load beside torch {torch.__version__} (a build for another torch)"
                 if "extension" in str(exc) else f"it cannot decode JPEG on {dev.type} ({_first(exc)})")
        raise InputError(f"decoding on {device} needs torchvision's decode_jpeg, but torchvision "
                         f"{torchvision.__version__} is installed and {which}; install the torchvision release built "
                         f"for this torch (its CUDA build for nvJPEG), {keep}") from None
    return decode


def _tiny_jpeg() -> torch.Tensor:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 140, 200)).save(buf, "JPEG")
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def _first(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]
