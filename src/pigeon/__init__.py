"""pigeon: image geolocation after PIGEON / PIGEOTTO (CVPR 2024).

The public API is small and imported lazily, so ``import pigeon`` stays fast::

    import pigeon
    geo = pigeon.Geolocator.from_pretrained("pigeon-demo/model")
    [pred] = geo.predict("photo.jpg", top_k=5)
"""

from __future__ import annotations

import importlib

from pigeon._compat import allow_torchvision_without_ops

__version__ = "0.1.0"

allow_torchvision_without_ops()  # before transformers, timm or open_clip import torchvision (see pigeon._compat)

_LAZY = {
    "Geolocator": "pigeon.model",
    "GeoCells": "pigeon.cells",
    "Embeddings": "pigeon.embed",
    "read_manifest": "pigeon.data",
    "haversine_km": "pigeon.geo",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pigeon' has no attribute {name!r}")
