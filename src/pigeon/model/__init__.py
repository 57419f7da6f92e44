"""The geolocator: geocell head with haversine label smoothing, auxiliary heads, multi-view, training, prediction.

>>> from pigeon.model import Geolocator, TrainConfig, train
>>> geo = train("data/manifest.parquet", "cells/", "emb/", "model/", TrainConfig(tau_km=75))
>>> [pred] = Geolocator.from_pretrained("model/").predict([["n.jpg", "e.jpg", "s.jpg", "w.jpg"]])
>>> pred.lat, pred.lon, pred.confidence, pred.refined, pred.top_k[0].country
"""

from pigeon.model import placers
from pigeon.model._aux import REGRESSION_TRANSFORMS, AuxTargets, Standardiser, aux_targets
from pigeon.model._finetune import finetune
from pigeon.model._fit import FitResult, GeolocatorLoss, TrainConfig, fit_head, top_cell_validation
from pigeon.model._geolocator import PRETRAINED, Geolocator, pretrained_path
from pigeon.model._prediction import Candidate, Placement, Prediction
from pigeon.model.placers import METHODS, TrainingData
from pigeon.model._loss import (
    TAU_PHOTOS_KM, TAU_STREETVIEW_KM, geocell_targets, haversine_targets, soft_cross_entropy,
)
from pigeon.model._predict import (
    FAILURE_COLUMNS, PREDICTION_COLUMNS, ManifestRun, manifest_embeddings, predict_manifest, predict_manifest_file,
)
from pigeon.model._build import build_artefacts, build_refiner, plan_artefacts, training_data
from pigeon.model._train import train
from pigeon.model._views import VIEW_RULES, StoreRows, location_embeddings
from pigeon.model.layers import GeocellHead, GeolocatorHead, HeadConfig

__all__ = [
    "FAILURE_COLUMNS", "METHODS", "VIEW_RULES", "location_embeddings", "manifest_embeddings",
    "PREDICTION_COLUMNS", "PRETRAINED", "REGRESSION_TRANSFORMS", "TAU_PHOTOS_KM", "TAU_STREETVIEW_KM", "AuxTargets", "Candidate",
    "FitResult", "GeocellHead", "Placement", "TrainingData", "build_artefacts", "build_refiner",
    "plan_artefacts", "placers", "training_data", "Geolocator", "GeolocatorHead", "GeolocatorLoss", "HeadConfig", "Prediction", "Standardiser",
    "StoreRows", "TrainConfig", "aux_targets", "finetune", "fit_head", "geocell_targets", "haversine_targets", "predict_manifest", "predict_manifest_file", "ManifestRun",
    "pretrained_path", "soft_cross_entropy", "top_cell_validation", "train",
]
