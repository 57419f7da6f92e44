"""The geolocator: geocell head with haversine label smoothing, auxiliary heads, multi-view, training, prediction.

>>> from pigeon.model import Geolocator, TrainConfig, train
>>> geo = train("data/manifest.parquet", "cells/", "emb/", "model/", TrainConfig(tau_km=75))
>>> [pred] = Geolocator.from_pretrained("model/").predict([["n.jpg", "e.jpg", "s.jpg", "w.jpg"]])
>>> pred.lat, pred.lon, pred.confidence, pred.refined, pred.top_k[0].country
"""

from pigeon._lazy import exports_of, lazy_exports

_EXPORTS = exports_of({
    "pigeon.presets": ("TAU_PHOTOS_KM", "TAU_STREETVIEW_KM"),
    "pigeon.model._aux": ("REGRESSION_TRANSFORMS", "VALID_RANGES", "AuxTargets", "Standardiser", "aux_targets"),
    "pigeon.model._calibrate": ("calibrate", "calibrate_manifest", "choose_guess", "pick_guess", "recalibrate"),
    "pigeon.model._config": ("DEFAULT_TOP_K", "VIEW_RULES", "AuxWeights", "FinetuneConfig", "TrainConfig"),
    "pigeon.model._finetune": ("finetune",),
    "pigeon.model._fit": ("FitResult", "GeolocatorLoss", "fit_head", "top_cell_validation"),
    "pigeon.model._geolocator": ("PRETRAINED", "Geolocator", "pretrained_path"),
    "pigeon.model._prediction": ("Candidate", "Placement", "Prediction"),
    "pigeon.model.placers": ("METHODS", "TrainingData"),
    "pigeon.model._build": ("build_artefacts", "build_refiner", "plan_artefacts", "training_data"),
    "pigeon.model._loss": ("geocell_targets", "haversine_targets", "soft_cross_entropy"),
    "pigeon.model._predict": ("FAILURE_COLUMNS", "PREDICTION_COLUMNS", "P_WITHIN_COLUMNS", "POSTERIOR_COLUMNS",
                              "ManifestRun", "manifest_embeddings", "predict_manifest", "predict_manifest_file"),
    "pigeon.model._train": ("train",),
    "pigeon.model._views": ("StoreRows", "location_embeddings"),
    "pigeon.model.layers": ("GeocellHead", "GeolocatorHead", "HeadConfig"),
})
__all__ = sorted(_EXPORTS)
# lazy: a prediction loads the geolocator without the trainers, the engine and their imports (start-up time)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
