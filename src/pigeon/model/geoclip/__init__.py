"""GeoCLIP-style continuous retrieval: a location encoder and an image projection trained contrastively, and a
query's posterior over the points of a GPS gallery; GeoCLIP's published weights load into the same modules.

>>> from pigeon.model.geoclip import GeoClipConfig, build_geoclip
>>> method = build_geoclip(X, coords, cells, GeoClipConfig(epochs=40))   # X (N, D) embeddings, coords (N, 2)
>>> rows, probs = method.top_points(X_query, k=5)                        # gallery rows and their probabilities
>>> method.coords[rows[0]]                                               # (5, 2) lat, lon of the best points

Stage: model (imports nothing above :mod:`pigeon.model`). The placing method that uses it is
:mod:`pigeon.model.placers.geoclip`.
"""

from pigeon.model.geoclip._build import TRAINING_LOCATIONS, build_geoclip, training_pairs, use_gallery
from pigeon.model.geoclip._encoder import (
    GEOCLIP_SHAPES, SF, EncoderConfig, FourierFeatures, GeoClipTowers, ImageProjection, LocationCapsule,
    LocationEncoder, equal_earth,
)
from pigeon.model.geoclip._gallery import MAX_GALLERY_POINTS, cell_mass, read_gallery, top_points
from pigeon.model.geoclip._head import GalleryHead
from pigeon.model.geoclip._model import GeoClip, feature_cache_dir
from pigeon.model.geoclip._train import ContrastiveTask, GeoClipConfig, GeoClipFit, fit_geoclip

__all__ = [
    "GEOCLIP_SHAPES", "MAX_GALLERY_POINTS", "SF", "TRAINING_LOCATIONS", "ContrastiveTask", "EncoderConfig",
    "FourierFeatures", "GalleryHead", "GeoClip", "GeoClipConfig", "GeoClipFit", "GeoClipTowers", "ImageProjection",
    "LocationCapsule", "LocationEncoder", "build_geoclip", "cell_mass", "equal_earth", "feature_cache_dir",
    "fit_geoclip", "read_gallery", "top_points", "training_pairs", "use_gallery",
]
