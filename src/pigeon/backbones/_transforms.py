"""Evaluation preprocessing from a :class:`BackboneCfg`: resize shortest edge, centre crop, normalise.

Pure PIL + NumPy (no torchvision), numerically the same as ``transformers``' PIL image processors: the
shortest edge becomes ``floor(image_size / crop_pct)``, the long edge ``int(short * long / short_in)``, then a
centre crop with ``top = (h - crop) // 2``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from pigeon.backbones._config import BackboneCfg
from pigeon.errors import InputError
from pigeon.images import load_image

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


class ImageTransform:
    """A picklable callable ``(path or PIL image) -> float32 tensor (3, image_size, image_size)``.

    Args:
        cfg: the backbone's configuration (size, crop, interpolation, mean, std).
    """

    def __init__(self, cfg: BackboneCfg) -> None:
        if cfg.interpolation not in _FILTERS:
            raise InputError(f"unknown interpolation {cfg.interpolation!r}; use one of {', '.join(_FILTERS)}")
        self.cfg = cfg
        self.resize_size = math.floor(cfg.image_size / cfg.crop_pct + 1e-6)
        self._mean = np.asarray(cfg.mean, dtype=np.float32)
        self._std = np.asarray(cfg.std, dtype=np.float32)

    def __call__(self, src: str | os.PathLike | Image.Image) -> torch.Tensor:
        img = load_image(src)
        w, h = img.size
        short, long = min(w, h), max(w, h)
        new_long = int(self.resize_size * long / short)
        size = (self.resize_size, new_long) if w <= h else (new_long, self.resize_size)
        if size != img.size:
            img = img.resize(size, resample=_FILTERS[self.cfg.interpolation])
        crop = self.cfg.image_size
        left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
        x = (np.asarray(img, dtype=np.float32) * np.float32(1 / 255) - self._mean) / self._std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def __repr__(self) -> str:
        c = self.cfg
        return (f"ImageTransform(resize={self.resize_size}, crop={c.image_size}, interpolation={c.interpolation!r}, "
                f"mean={c.mean}, std={c.std})")
