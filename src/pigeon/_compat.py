"""Compatibility with a torchvision whose compiled ops do not match the installed torch.

The ``open_clip`` and ``timm`` backbones need torchvision, and ``transformers`` imports it when present. PyPI's
torchvision wheels are built against the CUDA build of torch: next to the CPU build of torch (the set-up pigeon's
README uses) their compiled extension cannot load, and ``import torchvision`` then fails while registering fake
kernels for two of its detection ops (``operator torchvision::nms does not exist``). Declaring those two op schemas
first lets the pure-Python parts import (transforms, model definitions: all that open_clip, timm and transformers
use here); the detection ops stay unavailable. Where torchvision matches torch this does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCHEMAS = {"nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"}
_done = False


def allow_torchvision_without_ops() -> bool:
    """Make ``import torchvision`` work when its compiled ops cannot load; True when the fallback was applied."""
    global _done
    if _done or "torchvision" in sys.modules:
        return False
    _done = True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    import torch  # only where torchvision is installed, so a plain 'import pigeon' stays light

    extension = next(Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"), None)
    if extension is None:
        return False
    try:
        torch.ops.load_library(str(extension))
        return False
    except OSError:
        pass
    for name, schema in _SCHEMAS.items():
        torch.library.define(f"torchvision::{name}", schema)
    return True
