"""``pigeon train``: fit the geolocator's heads from a manifest, its geocells and its embeddings store."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from pigeon._device import is_main_process, main_process_writes
from pigeon._io import write_json
from pigeon.engine import refuse_existing
from pigeon.errors import InputError
from pigeon.model._aux import AuxTargets, aux_targets
from pigeon.model._build import build_artefacts, plan_artefacts
from pigeon.model._config import TrainConfig
from pigeon.model._fit import FitResult, fit_head
from pigeon.model._geolocator import CONFIG, Geolocator
from pigeon.model._views import StoreRows
from pigeon.model.placers import TrainingData
from pigeon.presets import resolve

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
    from pigeon.data import select_split, training_rows

    train_df = training_rows(df)
    if "split" not in df.columns:
        return train_df, None
    val_df = select_split(df, "val", empty_ok=True)
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
    config = (config or resolve(TrainConfig, "train", preset)).validate()
    out_dir = refuse_existing(out_dir, CONFIG, "a model", resume=resume, overwrite=overwrite)
    df, cells, emb = load_inputs(manifest, cells, embeddings)
    plan = plan_artefacts(methods, len(cells), {**(artefact_configs or {}), "refiner": refine or None},
                          preset)  # checked before any work
    if refine is False:
        plan.pop("refiner", None)
    train_df, (X, coords, labels), val_df, val = head_data(df, cells, emb, config.views)
    aux = aux_targets(train_df)
    result = fit_head(X, coords, labels, cells.centroids, aux=aux, val=val, config=config,
                      out_dir=out_dir, resume=resume)
    geo = assemble(result, cells, emb, config, aux, preset)  # on every process: collective artefacts need it
    data = artefact_data(train_df, (X, coords, labels), val_df, val, out_dir, resume)
    collective = {name: step for name, step in plan.items() if step[0].collective}
    build_artefacts(geo, data, collective)  # trained by every process together
    with main_process_writes() as writer:  # rank 0 writes the model folder; the others load it once it is complete
        if writer:
            build_artefacts(geo, data, {name: step for name, step in plan.items() if name not in collective})
            fit_posterior(geo, val, preset)  # after the artefacts: the refiner's retrieval is part of it
            save_model(geo, result, out_dir)
    return geo if is_main_process() else Geolocator.from_pretrained(out_dir)


def head_data(df: pd.DataFrame, cells, emb, views: str):
    """The training rows that have an embedding, their ``(X, coords, cells)`` (``X`` read on demand, each process
    its own rows, by :func:`fit_head`), and the validation rows with theirs (both None: hold some training rows
    out)."""
    train_df, val_df = split_rows(df)
    train_df = _embedded(train_df, emb, "training")
    val = None
    if val_df is not None:
        val_df = _embedded(val_df, emb, "validation")
        val = _rows(val_df, cells, emb, views)
    return train_df, _rows(train_df, cells, emb, views), val_df, val


def artefact_data(train_df: pd.DataFrame, rows, val_df: pd.DataFrame | None, val, work_dir: Path,
                  resume: bool) -> TrainingData:
    """What the placing methods' artefacts are built from: the training rows, the validation rows (what an
    artefact trained on the engine chooses its epoch by) and the folder for its checkpoint."""
    val_data = None if val is None else TrainingData(val_df["id"].astype(str).to_numpy(), *val, val_df)
    return TrainingData(train_df["id"].astype(str).to_numpy(), *rows, train_df, val=val_data, work_dir=work_dir,
                        resume=resume)


def assemble(result: FitResult, cells, emb, config: TrainConfig, aux: AuxTargets, preset: str | None) -> Geolocator:
    """The training epilogue: the geolocator of the trained heads, with the config that records how it was made."""
    model_config: dict[str, Any] = {
        "kind": "geolocator",
        "preset": preset,
        "backbone": emb.backbone,
        "backbone_cfg": emb.meta.get("config", {}).get("backbone_cfg"),
        "embed_dim": int(result.head.cfg.in_dim),
        "cells": {"n_cells": len(cells), **{k: v for k, v in getattr(cells, "meta", {}).get("config", {}).items()
                                            if k in ("method", "preset", "min_size", "max_size")}},
        "climate_classes": list(aux.climate_classes) if result.head.climate is not None else [],
        "train": config.to_dict(),
        "data": {"n_train": result.n_train, "n_val": result.n_val,
                 "views_per_location": float(np.mean(emb.n_views))},
        "best_validation": result.best,
    }
    return Geolocator(result.head, cells, model_config, result.standardiser)


def save_model(geo: Geolocator, result: FitResult, out_dir: Path) -> None:
    """Write the model folder and ``metrics.json`` (the chosen epoch, the last one)."""
    geo.save_pretrained(out_dir)
    write_json(out_dir / METRICS, {"best_epoch": result.best["epoch"], "epochs_run": len(result.history),
                                   "best": result.best, "final": result.history[-1]})


def fit_posterior(geo: Geolocator, val, preset: str | None) -> None:
    """The posterior's settings (:class:`pigeon.posterior.PosteriorConfig`; no preset changes them yet) and, with a
    validation split, its calibration (temperature, sharpening, unseen-ground flattening) fitted on those rows."""
    from pigeon.model._calibrate import calibrate
    from pigeon.posterior import PosteriorConfig

    geo.posterior_config = resolve(PosteriorConfig, "posterior", preset).validate()
    if val is not None:
        calibrate(geo, val[0][np.arange(len(val[0]))], val[1])


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
