"""Backbone folders written by ``pigeon pretrain``, loaded like any other backbone.

``backbone.json`` names the architecture it starts from (``base``: a backbone name, where ``{root}`` stands for
the folder itself) and, for backbones whose weights live elsewhere (the offline EfficientNet), a safetensors file
with the pretrained image weights. ``pigeon embed --backbone ./pretrained/`` and ``load("pretrained:./pretrained")``
both work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pigeon._io import read_json, read_tensors
from pigeon.backbones._base import Backbone
from pigeon.backbones._config import BackboneCfg
from pigeon.backbones._registry import PRETRAINED_MARKER, load, register_backbone
from pigeon.errors import InputError

_HINT = "pass a folder written by 'pigeon pretrain'"


def read_marker(folder: str | Path) -> dict[str, Any]:
    """The ``backbone.json`` of a pretrained folder."""
    marker = read_json(Path(folder) / PRETRAINED_MARKER, hint=_HINT)
    if not isinstance(marker, dict) or "base" not in marker or "cfg" not in marker:
        raise InputError(f"{Path(folder) / PRETRAINED_MARKER} has no 'base' and 'cfg'; {_HINT}")
    return marker


def base_name(folder: str | Path, marker: dict[str, Any]) -> str:
    """The backbone name the folder builds on, with ``{root}`` replaced by the folder."""
    return marker["base"].replace("{root}", str(Path(folder)))


@register_backbone("pretrained", cfg_reader=lambda spec: BackboneCfg.from_dict(read_marker(spec)["cfg"]))
def load_pretrained_folder(spec: str) -> Backbone:
    """``pretrained:<folder>``: the base architecture with the folder's pretrained image weights."""
    marker = read_marker(spec)
    backbone = load(base_name(spec, marker), device="cpu")
    if marker.get("weights"):
        path = Path(spec) / marker["weights"]
        weights = read_tensors(path, "the pretrained folder is incomplete or damaged: rerun 'pigeon pretrain'")
        try:
            backbone.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise InputError(f"{path} does not fit {marker['base']!r} ({str(exc).splitlines()[0][:100]}); "
                             "rerun 'pigeon pretrain'") from None
    backbone.cfg = BackboneCfg.from_dict(marker["cfg"])
    return backbone
