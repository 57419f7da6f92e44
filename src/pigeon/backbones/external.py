"""Backbones from optional libraries with local checkpoints: ``open_clip:<arch>:<ckpt>``, ``timm:<name>:<ckpt>``.

Both libraries come with the ``models`` extra (``pip install "pigeon-geo[models]"``, part of ``dev``); without them
these names raise :class:`~pigeon.errors.MissingDependencyError` with the pip line. Checkpoints are local files
(``.safetensors`` preferred; ``.pt``/``.pth``/``.bin`` are read with ``weights_only``). An open_clip architecture may
be given as the path of its JSON model config (e.g. a small custom model), which is registered first.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from pigeon.backbones._base import Backbone
from pigeon.backbones._config import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, BackboneCfg
from pigeon.backbones._registry import register_backbone
from pigeon.errors import ArtifactNotFoundError, InputError, MissingDependencyError


class WrappedBackbone(Backbone):
    """A pooled image encoder from another library, with the module to fine-tune named explicitly."""

    def __init__(self, name: str, cfg: BackboneCfg, encoder: nn.Module, tail: nn.Module) -> None:
        super().__init__(name, cfg)
        self.encoder = encoder
        self._tail = [tail]  # a list, so the tail is not registered twice as a submodule

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder(pixels)

    def last_block(self) -> nn.Module:
        return self._tail[0]


def create_open_clip(spec: str):
    """The full open_clip model (image and text towers) of ``<arch or config.json>:<checkpoint file>``."""
    arch, ckpt = _split(spec, "open_clip", "ARCH")
    open_clip = _require("open_clip", "open_clip_torch", "open_clip backbones")
    if arch.endswith(".json"):
        if not Path(arch).is_file():
            raise ArtifactNotFoundError(arch, "pass an open_clip model name or the path of its JSON model config")
        open_clip.add_model_config(arch)
        arch = Path(arch).stem
    if arch not in open_clip.list_models():
        raise InputError(f"unknown open_clip architecture {arch!r}; use a name from open_clip.list_models() or "
                         "the path of a JSON model config")
    return open_clip.create_model(arch, pretrained=str(_checkpoint(ckpt))), arch


def open_clip_cfg(model, source: str) -> BackboneCfg:
    """The :class:`BackboneCfg` of an open_clip model's visual tower."""
    visual = model.visual
    pre = getattr(visual, "preprocess_cfg", {}) or {}
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    return BackboneCfg(source=source, embed_dim=int(visual.output_dim), image_size=int(size),
                       mean=tuple(pre.get("mean", CLIP_MEAN)), std=tuple(pre.get("std", CLIP_STD)),
                       interpolation=pre.get("interpolation", "bicubic"), license="see the checkpoint's source",
                       pooling="open_clip visual tower output (pooled, projected)")


def open_clip_backbone(name: str, model, cfg: BackboneCfg) -> WrappedBackbone:
    """The registry backbone over an open_clip model's visual tower (its last residual block is the tail)."""
    visual = model.visual
    tail = visual.transformer.resblocks[-1] if hasattr(visual, "transformer") else visual
    return WrappedBackbone(name, cfg, visual, tail)


@register_backbone("open_clip")
def load_open_clip(spec: str) -> WrappedBackbone:
    """``open_clip:<arch or config.json>:<checkpoint file>``: the visual tower's pooled, projected embedding."""
    model, _ = create_open_clip(spec)
    return open_clip_backbone(f"open_clip:{spec}", model, open_clip_cfg(model, spec.partition(":")[2]))


@register_backbone("timm")
def load_timm(spec: str) -> WrappedBackbone:
    """``timm:<model name>:<checkpoint file>``: timm's pooled features (``num_classes=0``)."""
    arch, ckpt = _split(spec, "timm", "NAME")
    timm = _require("timm", "timm", "timm backbones")
    if not timm.is_model(arch):
        raise InputError(f"unknown timm model {arch!r}; see timm.list_models() for the names")
    # loading as "pretrained" from a file drops a classifier the checkpoint may have (num_classes=0)
    model = timm.create_model(arch, pretrained=True, num_classes=0,
                              pretrained_cfg_overlay={"file": str(_checkpoint(ckpt))})
    pre = model.pretrained_cfg
    cfg = BackboneCfg(source=str(ckpt), embed_dim=int(model.num_features), image_size=int(pre["input_size"][-1]),
                      mean=tuple(pre.get("mean", IMAGENET_MEAN)), std=tuple(pre.get("std", IMAGENET_STD)),
                      interpolation=pre.get("interpolation", "bicubic"), license=pre.get("license", "unknown"),
                      crop_pct=float(pre.get("crop_pct", 1.0)), pooling="timm global pool (num_classes=0)")
    blocks = getattr(model, "blocks", None) or getattr(model, "stages", None)
    return WrappedBackbone(f"timm:{spec}", cfg, model, blocks[-1] if blocks is not None else model)


def _split(spec: str, scheme: str, what: str) -> tuple[str, str]:
    arch, sep, ckpt = spec.partition(":")
    if not (arch and sep and ckpt):
        raise InputError(f"{scheme} backbones are named {scheme}:{what}:CHECKPOINT (a local weights file); "
                         f"got {scheme}:{spec}")
    return arch, ckpt


def _require(module: str, package: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, extra="models", purpose=purpose) from None


def _checkpoint(path: str) -> Path:
    if not Path(path).is_file():
        raise ArtifactNotFoundError(path, "pass the path of a local checkpoint file")
    return Path(path)
