"""pigeon: image geolocation after PIGEON / PIGEOTTO (CVPR 2024).

The public API is small and imported lazily, so ``import pigeon`` stays fast::

    import pigeon
    geo = pigeon.Geolocator.from_pretrained("pigeon-demo/model")
    [pred] = geo.predict("photo.jpg", top_k=5)
"""

from __future__ import annotations

from pigeon._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "Geolocator": "pigeon.model._geolocator",
    "GeoCells": "pigeon.cells._geocells",
    "Embeddings": "pigeon.embed._store",
    "read_manifest": "pigeon.data.manifest",
    "haversine_km": "pigeon.geo",
}

__all__ = [*_LAZY, "__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
