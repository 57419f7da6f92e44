"""``pigeon train``: fit the geolocator's heads from a manifest, its geocells and its embeddings store."""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from pigeon._device import barrier, is_main_process
from pigeon._io import write_json
from pigeon.errors import InputError
from pigeon.model._aux import aux_targets
from pigeon.engine import CHECKPOINT_DIR
from pigeon.model._fit import TrainConfig, fit_head
from pigeon.model._build import build_artefacts, plan_artefacts
from pigeon.model._geolocator import CONFIG, Geolocator
from pigeon.model._views import StoreRows
from pigeon.model.placers import TrainingData

if TYPE_CHECKING:
    from pigeon.refine import RefineConfig

METRICS = "metrics.json"


def load_inputs(manifest, cells, embeddings):
    """Accept paths or loaded objects for the three inputs of :func:`train`."""
    from pigeon.data import read_manifest
    from pigeon.embed import Embeddings

    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    emb = embeddings if hasattr(embeddings, "get_views") else Embeddings.load(embeddings)
    if not hasattr(cells, "centroids"):
        from pigeon.cells import GeoCells

        cells = GeoCells.load(cells)
    return df, cells, emb


def split_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Training rows and validation rows (None: hold some training rows out)."""
    if "split" not in df.columns:
        return df, None
    train_df = df[df["split"] == "train"]
    if train_df.empty:
        raise InputError("the manifest has no rows with split 'train'; add a split column with "
                         "'pigeon data ingest --split' or remove it to train on every row")
    val_df = df[df["split"] == "val"]
    return train_df, (val_df if len(val_df) else None)


def train(manifest: str | os.PathLike | pd.DataFrame, cells, embeddings, out_dir: str | os.PathLike,
          config: TrainConfig | None = None, *, methods: Sequence[str] | None = None,
          refine: RefineConfig | Literal[False] | None = None, preset: str | None = None,
          artefact_configs: Mapping[str, Any] | None = None, resume: bool = False,
          overwrite: bool = False) -> Geolocator:
    """Train a geolocator on cached embeddings and write its model folder.

    Args:
        manifest: manifest path or DataFrame; rows with ``split == "train"`` train (all rows without a split
            column), ``"val"`` rows choose the epoch (else ``config.val_fraction`` of the training rows).
            Auxiliary heads are made for the enrichment columns it has (``koppen``, ``month``/``taken_at``,
            ``elevation_m``, ``pop_density``, ``temp_*``, ``precip_*``).
        cells: a :class:`pigeon.cells.GeoCells` or its folder.
        embeddings: a :class:`pigeon.embed.Embeddings` or its folder (rows that failed to embed are skipped).
        out_dir: the model folder to write.
        config: a :class:`TrainConfig` (default: the preset's).
        methods: placing methods (:data:`pigeon.model.placers.METHODS`) to build the artefacts of from the
            training rows and their embeddings (default: the registry's default artefacts: the refiner).
        refine: the :class:`pigeon.refine.RefineConfig` of the refiner (default: the preset's); ``False`` builds
            no refiner (an alias kept from before ``methods``).
        preset: ``"streetview"`` or ``"photo"`` (:mod:`pigeon.presets`), recorded in the model's config.
        artefact_configs: build configs of other artefacts by name, e.g. ``{"geoclip": GeoClipConfig(epochs=20)}``
            (default: each artefact's).
        resume: continue an interrupted run from ``out_dir/checkpoint``.
        overwrite: replace an existing model folder.

    Under ``torchrun --nproc-per-node N -m pigeon train ...`` each process trains on its share of the embeddings
    (see :func:`fit_head`); every process builds the collective artefacts (geoclip) together, then rank 0 builds
    the others (the refiner) and writes the model folder while the others wait, and every process returns the saved
    model.

    Returns:
        The trained :class:`Geolocator` (also saved in ``out_dir``).
    """
    from pigeon.presets import resolve

    config = (config or resolve(TrainConfig, "train", preset)).validate()
    out_dir = Path(out_dir)
    if not resume and not overwrite and ((out_dir / CONFIG).exists() or (out_dir / CHECKPOINT_DIR).exists()):
        raise InputError(f"{out_dir} already holds a model; pass --overwrite to replace it or --resume to continue")
    df, cells, emb = load_inputs(manifest, cells, embeddings)
    plan = plan_artefacts(methods, len(cells), {**(artefact_configs or {}), "refiner": refine or None},
                          preset)  # checked before any work
    if refine is False:
        plan.pop("refiner", None)
    train_df, val_df = split_rows(df)
    train_df = _embedded(train_df, emb, "training")
    val = None
    if val_df is not None:
        val_df = _embedded(val_df, emb, "validation")
        val = _rows(val_df, cells, emb, config.views)
    X, coords, labels = _rows(train_df, cells, emb, config.views)  # read by fit_head, each process its own rows
    aux = aux_targets(train_df)
    result = fit_head(X, coords, labels, cells.centroids, aux=aux, val=val, config=config,
                      out_dir=out_dir, resume=resume)
    geo = Geolocator(result.head, cells, _model_config(preset, emb, X, cells, aux, result, config),
                     result.standardiser)
    data = TrainingData(train_df["id"].astype(str).to_numpy(), X, coords, labels, train_df,
                        val=TrainingData(val_df["id"].astype(str).to_numpy(), *val, val_df) if val else None,
                        work_dir=out_dir, resume=resume)
    collective = {name: step for name, step in plan.items() if step[0].collective}
    build_artefacts(geo, data, collective)  # trained by every process together
    if not is_main_process():  # rank 0 writes the model folder; the others load it once it is complete
        barrier()
        return Geolocator.from_pretrained(out_dir)
    build_artefacts(geo, data, {name: step for name, step in plan.items() if name not in collective})
    geo.save_pretrained(out_dir)
    write_json(out_dir / METRICS, {"best_epoch": result.best["epoch"], "epochs_run": len(result.history),
                                   "best": result.best, "final": result.history[-1]})
    barrier()
    return geo


def _model_config(preset, emb, X, cells, aux, result, config: TrainConfig) -> dict[str, Any]:
    """The ``config.json`` of a freshly trained model."""
    model_config: dict[str, Any] = {
        "kind": "geolocator",
        "preset": preset,
        "backbone": emb.backbone,
        "backbone_cfg": emb.meta.get("config", {}).get("backbone_cfg"),
        "embed_dim": int(X.shape[1]),
        "cells": {"n_cells": len(cells), **{k: v for k, v in getattr(cells, "meta", {}).get("config", {}).items()
                                            if k in ("method", "preset", "min_size", "max_size")}},
        "climate_classes": list(aux.climate_classes) if result.head.climate is not None else [],
        "train": config.to_dict(),
        "data": {"n_train": result.n_train, "n_val": result.n_val,
                 "views_per_location": float(np.mean(emb.n_views))},
    }
    model_config["best_validation"] = result.best
    return model_config


def _embedded(df: pd.DataFrame, emb, what: str) -> pd.DataFrame:
    """Rows that have an embedding; an error when none do."""
    keep = df[df["id"].map(lambda i: i in emb)]
    if keep.empty:
        raise InputError(f"none of the {len(df)} {what} rows has an embedding in {emb.root} (see failed.csv "
                         "there); run 'pigeon embed' on this manifest")
    return keep


def _rows(df: pd.DataFrame, cells, emb, views: str) -> tuple[StoreRows, np.ndarray, np.ndarray]:
    """Embeddings (read on demand), coordinates and cells of ``df``'s rows."""
    coords = df[["lat", "lon"]].to_numpy(np.float64)
    return StoreRows(emb, df["id"].to_numpy(), views), coords, cells.assign(coords[:, 0], coords[:, 1])
