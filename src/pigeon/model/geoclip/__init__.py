"""GeoCLIP-style continuous retrieval: a location encoder and an image projection trained contrastively, and a
query's posterior over the points of a GPS gallery; GeoCLIP's published weights load into the same modules.

>>> from pigeon.model.geoclip import GeoClipConfig, build_geoclip
>>> method = build_geoclip(X, coords, cells, GeoClipConfig(epochs=40))   # X (N, D) embeddings, coords (N, 2)
>>> rows, probs = method.top_points(X_query, k=5)                        # gallery rows and their probabilities
>>> method.coords[rows[0]]                                               # (5, 2) lat, lon of the best points

Stage: model (imports nothing above :mod:`pigeon.model`). The placing method that uses it is
:mod:`pigeon.model.placers.geoclip`.
"""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon.model.geoclip._build": ("TRAINING_LOCATIONS", "build_geoclip", "training_pairs", "use_gallery"),
    "pigeon.model.geoclip._config": ("GEOCLIP_SHAPES", "EncoderConfig", "GeoClipConfig"),
    "pigeon.model.geoclip._encoder": ("SF", "FourierFeatures", "GeoClipTowers", "ImageProjection", "LocationCapsule",
                                      "LocationEncoder", "equal_earth"),
    "pigeon.model.geoclip._gallery": ("MAX_GALLERY_POINTS", "cell_mass", "read_gallery", "top_points"),
    "pigeon.model.geoclip._head": ("GalleryHead",),
    "pigeon.model.geoclip._model": ("GeoClip", "feature_cache_dir"),
    "pigeon.model.geoclip._published": ("load_geoclip",),
    "pigeon.model.geoclip._train": ("ContrastiveTask", "GeoClipFit", "fit_geoclip"),
})
__all__ = sorted(_EXPORTS)
# lazy: the CLI reads the configs' defaults for its help texts without torch
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
