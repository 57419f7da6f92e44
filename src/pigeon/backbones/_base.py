"""The interface every backbone shares: a frozen-by-default ``nn.Module`` with its own preprocessing."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from pigeon.backbones._config import BackboneCfg
from pigeon.backbones._transforms import ImageTransform
from pigeon.errors import InputError
from pigeon.images import DecodeConfig

ImageLike = str | os.PathLike | Image.Image


class Backbone(nn.Module):
    """An image encoder: pixels ``(N, 3, S, S)`` -> pooled embeddings ``(N, D)``.

    Subclasses implement :meth:`forward` and :meth:`last_block`. ``forward`` is differentiable so the model
    stage can fine-tune (see :meth:`unfreeze_last_block`); :meth:`embed` is the inference path.

    Attributes:
        name: the registry name it was loaded under.
        cfg: its :class:`BackboneCfg`.
        transform: the picklable preprocessing callable (safe to send to DataLoader workers).
        decode: how :meth:`preprocess` decodes images (:class:`~pigeon.images.DecodeConfig`; setting it, e.g. to
            ``DecodeConfig(exact=True)`` to decode every pixel instead of JPEG draft mode / reduce, remakes
            ``transform``).
    """

    #: put conv nets in channels-last memory format (faster on CPU and tensor cores).
    channels_last: bool = False

    def __init__(self, name: str, cfg: BackboneCfg) -> None:
        super().__init__()
        self.name = name
        self.cfg = cfg
        self._decode = DecodeConfig()
        self.transform = ImageTransform(cfg, self._decode)

    @property
    def embed_dim(self) -> int:
        """Size D of an embedding."""
        return self.cfg.embed_dim

    @property
    def decode(self) -> DecodeConfig:
        return self._decode

    @decode.setter
    def decode(self, value: DecodeConfig) -> None:
        self._decode = value
        self.transform = ImageTransform(self.cfg, value)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled embeddings ``(N, D)`` of a normalised pixel batch ``(N, 3, S, S)``."""
        raise NotImplementedError

    def last_block(self) -> nn.Module:
        """The last trainable stage of the encoder (what PIGEON fine-tunes)."""
        raise NotImplementedError

    def unfreeze_last_block(self) -> list[nn.Parameter]:
        """Freeze every parameter except those of :meth:`last_block`; return the trainable ones."""
        self.requires_grad_(False)
        block = self.last_block()
        block.requires_grad_(True)
        return list(block.parameters())

    def preprocess(self, img: ImageLike) -> torch.Tensor:
        """Decode (if a path) and preprocess one image to a float32 ``(3, S, S)`` tensor (bounded: see
        :mod:`pigeon.images`)."""
        return self.transform(img)

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        """Move a CPU pixel batch to this backbone's device, dtype and memory format."""
        pixels = pixels.to(self.device, self.dtype, non_blocking=True)
        return pixels.contiguous(memory_format=torch.channels_last) if self.channels_last else pixels

    @torch.inference_mode()
    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Embeddings of a preprocessed batch ``(N, 3, S, S)`` as float32 ``(N, D)`` NumPy."""
        was_training = self.training
        self.eval()
        try:
            return self(self.prepare(pixels)).float().cpu().numpy()
        finally:
            self.train(was_training)

    def embed(self, images: ImageLike | Sequence[ImageLike], batch_size: int = 32) -> np.ndarray:
        """Embed images (paths or PIL images), batched, in eval mode under ``torch.inference_mode``.

        Returns:
            float32 array ``(N, D)``, one row per input image (a single image gives ``(1, D)``).
        """
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        if len(images) == 0:
            raise InputError("no images to embed; pass at least one path or PIL image")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        out = [self.embed_pixels(torch.stack([self.preprocess(im) for im in images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, embed_dim={self.embed_dim}, image_size={self.cfg.image_size}"
