"""The geolocator: geocell head with haversine label smoothing, auxiliary heads, multi-view, training, prediction.

>>> from pigeon.model import Geolocator, TrainConfig, train
>>> geo = train("data/manifest.parquet", "cells/", "emb/", "model/", TrainConfig(tau_km=75))
>>> [pred] = Geolocator.from_pretrained("model/").predict([["n.jpg", "e.jpg", "s.jpg", "w.jpg"]])
>>> pred.lat, pred.lon, pred.confidence, pred.refined, pred.top_k[0].country
"""

from pigeon._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "pigeon.presets": ("TAU_PHOTOS_KM", "TAU_STREETVIEW_KM"),
    "_aux": ("REGRESSION_TRANSFORMS", "AuxTargets", "Standardiser", "aux_targets"),
    "_config": ("DEFAULT_TOP_K", "VIEW_RULES", "AuxWeights", "FinetuneConfig", "TrainConfig"),
    "_finetune": ("finetune",),
    "_fit": ("FitResult", "GeolocatorLoss", "fit_head", "top_cell_validation"),
    "_geolocator": ("PRETRAINED", "Geolocator", "pretrained_path"),
    "_loss": ("geocell_targets", "haversine_targets", "soft_cross_entropy"),
    "_predict": ("FAILURE_COLUMNS", "PREDICTION_COLUMNS", "ManifestRun", "manifest_embeddings", "predict_manifest",
                 "predict_manifest_file"),
    "_prediction": ("METHODS", "Candidate", "Prediction"),
    "_train": ("train",),
    "_views": ("StoreRows", "location_embeddings"),
    "layers": ("GeocellHead", "GeolocatorHead", "HeadConfig"),
})
