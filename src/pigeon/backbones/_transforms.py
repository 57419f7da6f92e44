"""Evaluation preprocessing from a :class:`BackboneCfg`: resize shortest edge, centre crop, normalise.

The geometry is that of ``transformers``' PIL image processors: the shortest edge becomes
``floor(image_size / crop_pct)``, the long edge ``int(short * long / short_in)``, then a centre crop with
``top = (h - crop) // 2``. By default only the crop is computed: the source box that maps onto it is resized straight
to the crop (Pillow's ``resize(box=...)``, the same filter in the same passes), after decoding through
:mod:`pigeon.images` with the resize size as its target (JPEG draft mode / reduce). ``DecodeConfig(exact=True)``
decodes every pixel and resizes the whole image, bit for bit what the processors do.

With ``DecodeConfig(device=...)`` JPEGs are decoded in batches by torchvision on that device instead
(:meth:`ImageTransform.stage` in the workers, :meth:`ImageTransform.finish` in the embedding process; see
:mod:`pigeon.backbones._batch_decode`), with the same geometry (:meth:`ImageTransform.geometry`).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from pigeon.backbones import _batch_decode
from pigeon.backbones._batch_decode import EncodedJpeg, StagedBatch
from pigeon.backbones._config import BackboneCfg
from pigeon.errors import InputError
from pigeon.images import DecodeConfig, PendingImage, load_image, open_image

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}

ImageSource = str | os.PathLike | bytes | Image.Image


class ImageTransform:
    """A picklable callable ``(path, bytes or PIL image) -> float32 tensor (3, image_size, image_size)``.

    Args:
        cfg: the backbone's configuration (size, crop, interpolation, mean, std).
        decode: how images are decoded (default :class:`~pigeon.images.DecodeConfig`: draft / reduce).
    """

    def __init__(self, cfg: BackboneCfg, decode: DecodeConfig | None = None) -> None:
        if cfg.interpolation not in _FILTERS:
            raise InputError(f"unknown interpolation {cfg.interpolation!r}; use one of {', '.join(_FILTERS)}")
        self.cfg = cfg
        self.decode = decode or DecodeConfig()
        self.resize_size = math.floor(cfg.image_size / cfg.crop_pct + 1e-6)
        self._mean = np.asarray(cfg.mean, dtype=np.float32)
        self._std = np.asarray(cfg.std, dtype=np.float32)

    def __call__(self, src: ImageSource, **options) -> torch.Tensor:
        return self.pixels(self.load(src, **options))

    def open(self, src: ImageSource, **options) -> PendingImage:
        """:func:`pigeon.images.open_image` with this transform's target and decoding (``options``: its others)."""
        return open_image(src, target=self.resize_size, decode=self.decode, **options)

    def load(self, src: ImageSource, **options) -> Image.Image:
        """The image decoded down to what this transform needs (RGB, short side >= the resize size when larger)."""
        return load_image(src, target=self.resize_size, decode=self.decode, **options)

    def stage(self, src: ImageSource, **options) -> torch.Tensor | EncodedJpeg:
        """What a DataLoader worker hands on with a decode device: the header checked, a JPEG left encoded (any
        other image, or without a device, its pixels as :meth:`__call__` gives them)."""
        if self.decode.device is None:
            return self(src, **options)
        return _batch_decode.stage(self, src, **options)

    def finish(self, batch: StagedBatch) -> tuple[list, torch.Tensor | None, list[tuple[object, str]]]:
        """The staged batch's pixels: its JPEGs decoded and preprocessed on the decode device (``(keys, pixels,
        failures)``; see :func:`pigeon.backbones._batch_decode.finish`)."""
        return _batch_decode.finish(self, batch)

    def check_device(self) -> None:
        """A one-line error now if the decode device cannot be used here (torchvision, CUDA); no-op without one."""
        _batch_decode.check(self)

    def pixels(self, img: Image.Image) -> torch.Tensor:
        """Resize, centre-crop and normalise an RGB image to a float32 ``(3, S, S)`` tensor."""
        img = self.crop(img)
        x = (np.asarray(img, dtype=np.float32) * np.float32(1 / 255) - self._mean) / self._std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def crop(self, img: Image.Image) -> Image.Image:
        """The centre crop of the image resized to the shortest edge.

        Exact decoding resizes the whole image and crops it, as the ``transformers`` processors do (bit for bit;
        bounded by the aspect-ratio limit). Otherwise only the source box that maps onto the crop is resized, in
        the same two passes (horizontal, then vertical) with the same filter: equal up to float rounding of the
        box (one grey level on a few pixels in a thousand).
        """
        w, h = img.size
        size, left, top = self.geometry(w, h)
        crop = self.cfg.image_size
        resample = _FILTERS[self.cfg.interpolation]
        if self.decode.exact or crop > self.resize_size:  # (a crop wider than the resized image: padded black)
            return (img if size == img.size else img.resize(size, resample=resample)).crop(
                (left, top, left + crop, top + crop))
        sx, sy = w / size[0], h / size[1]
        img = (img.resize((crop, h), resample=resample, box=(left * sx, 0, (left + crop) * sx, h)) if size[0] != w
               else img.crop((left, 0, left + crop, h)))
        return (img.resize((crop, crop), resample=resample, box=(0, top * sy, crop, (top + crop) * sy))
                if size[1] != h else img.crop((0, top, crop, top + crop)))

    def geometry(self, w: int, h: int) -> tuple[tuple[int, int], int, int]:
        """For an upright ``w x h`` image: its (width, height) resized to the shortest edge, and the (left, top) of
        the centre crop there (the processors' rule: ``int(resize * long / short)``, ``(size - crop) // 2``)."""
        short, long = min(w, h), max(w, h)
        new_long = int(self.resize_size * long / short)
        size = (self.resize_size, new_long) if w <= h else (new_long, self.resize_size)
        crop = self.cfg.image_size
        return size, (size[0] - crop) // 2, (size[1] - crop) // 2

    def __repr__(self) -> str:
        c = self.cfg
        return (f"ImageTransform(resize={self.resize_size}, crop={c.image_size}, interpolation={c.interpolation!r}, "
                f"mean={c.mean}, std={c.std}, decode={self.decode})")
