"""Image backbones by name: the paper's CLIP, StreetCLIP, any CLIP folder, and an offline default.

>>> from pigeon import backbones
>>> bb = backbones.load(backbones.DEFAULT_BACKBONE)      # EfficientNet-Lite0, ImageNet weights, offline
>>> bb.embed(["a.jpg", "b.jpg"]).shape                    # float32 (N, D)
(2, 1280)
"""

from pigeon._compat import allow_torchvision_without_ops

allow_torchvision_without_ops()  # before transformers, timm or open_clip import torchvision (see pigeon._compat)

from pigeon.backbones._base import Backbone  # noqa: E402
from pigeon.backbones._batch_decode import EncodedJpeg, StagedBatch
from pigeon.backbones._config import BackboneCfg
from pigeon.backbones._registry import (
    DEFAULT_BACKBONE, PRETRAINED_MARKER, PretrainedEntry, backbone_cfg, list_backbones, load, pretrained_entry,
    register_backbone, register_pretrained, resolve_device, resolve_dtype, split_name,
)
from pigeon.backbones._transforms import ImageTransform

# importing the loader modules registers their schemes
from pigeon.backbones import clip, efficientnet, external, pretrained  # noqa: E402,F401  isort: skip

__all__ = [
    "DEFAULT_BACKBONE", "PRETRAINED_MARKER", "Backbone", "BackboneCfg", "EncodedJpeg", "ImageTransform",
    "PretrainedEntry", "StagedBatch", "backbone_cfg", "list_backbones", "load", "pretrained_entry",
    "register_backbone", "register_pretrained", "resolve_device", "resolve_dtype", "split_name",
]
