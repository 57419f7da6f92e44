"""Fine-tuning on images with the backbone's last block unfrozen (PIGEON's last step; slower than the head path).

The loss is the head-training loss on the live backbone's embeddings: the haversine-smoothed geocell loss plus,
with ``aux=True`` (the paper's set-up), the weighted auxiliary losses, so every head's gradient reaches the shared
features of the unfrozen block. The backbone stays in eval mode (frozen batch-norm statistics) while its last
block's weights train. Runs on :class:`pigeon.engine.Engine`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pigeon._device import is_main_process, main_process_writes
from pigeon.engine import Engine, ShuffleSampler
from pigeon.model._aux import AuxTargets, aux_targets, aux_tensors
from pigeon.model._build import build_refiner
from pigeon.model._config import FinetuneConfig, TrainConfig
from pigeon.model._fit import GeolocatorLoss
from pigeon.model._geolocator import Geolocator
from pigeon.model._views import pool_views, select_views

#: Sub-folder of the model folder with the fine-tuning's log, curves and checkpoint.
FINETUNE_DIR = "finetune"


class FinetuneModel(nn.Module):
    """Backbone + heads with the training loss; ``forward(batch) -> (loss, stats, n)`` for the engine.

    ``batch["pixels"]`` holds every view of the batch's locations, ``batch["owner"]`` the location of each view;
    a location's embedding is the mean of its views' embeddings, as at prediction time.
    """

    def __init__(self, backbone, loss: GeolocatorLoss) -> None:
        super().__init__()
        self.backbone, self.task = backbone, loss

    def train(self, mode: bool = True) -> FinetuneModel:
        super().train(mode)
        self.backbone.eval()  # frozen batch-norm statistics and no backbone dropout
        return self

    def embed(self, pixels: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
        """Differentiable mean view embedding per location, ``(n, D)`` (:func:`pool_views` over a batch)."""
        return pool_views(self.backbone(self.backbone.prepare(pixels)).float(), owner, n)

    def forward(self, batch: dict[str, torch.Tensor]):
        x = self.embed(batch["pixels"], batch["owner"], len(batch["cells"]))
        return self.task.loss(self.task.head(x), batch)


def finetune(geo: Geolocator, df: pd.DataFrame, out_dir: str | os.PathLike, config: FinetuneConfig | None = None, *,
             resume: bool = False, **options) -> Geolocator:
    """Train the backbone's last block and the heads end to end on a manifest's training images.

    Args:
        geo: a trained geolocator (its heads are the starting point).
        df: a manifest (``split == "train"`` rows are used when it has a split column); its enrichment columns
            (``koppen``, ``month``/``taken_at``, geodata) feed the auxiliary losses.
        out_dir: model folder to write (``backbone.safetensors`` holds the fine-tuned block; ``finetune/`` the log,
            curves and checkpoint).
        config: a :class:`FinetuneConfig` (AdamW with warm-up then cosine; ``batch_size`` locations, each with all
            its views, per step; ``aux=False`` trains the geocell loss alone, the ablation).
        options: fields of :class:`FinetuneConfig` over ``config`` (None keeps its value), e.g. ``epochs=2``.
        resume: continue an interrupted fine-tuning from ``out_dir/finetune``.

    Under ``torchrun`` each process embeds and trains on ``batch_size / processes`` locations of each batch; rank 0
    then re-embeds the refiner's gallery and writes the model folder while the others wait, and every process
    returns the saved model.

    Returns:
        The fine-tuned geolocator, also saved in ``out_dir``.
    """
    from pigeon.data import training_rows

    config = (config or FinetuneConfig()).with_options(**options).validate()
    df = training_rows(df)
    train_cfg = TrainConfig.from_dict(geo.config.get("train", {}))
    views, data = _training_data(geo, df, train_cfg.views, config.aux)
    model, params = _unfrozen(geo, train_cfg, config)
    engine = Engine(config.optim(train_cfg.weight_decay), Path(out_dir) / FINETUNE_DIR,
                    log_name="finetune_log.jsonl", description="fine-tuning")
    sampler = ShuffleSampler(len(views), engine.per_rank(config.batch_size), config.seed, rank=engine.rank,
                             world_size=engine.world_size)
    result = engine.fit(model, sampler, _collate(views, data, geo.backbone, engine.device),
                        param_groups=[{"params": params}], resume=resume,
                        fingerprint={"n_train": len(views), "aux": config.aux, "batch_size": config.batch_size})
    _freeze(geo)
    geo.config["finetune"] = {**config.to_dict(), "n_train": len(views), "history": result.history}
    with main_process_writes() as writer:  # rank 0 writes the model folder; the others load it once it is complete
        if writer:
            if geo.refiner is not None:  # the gallery must be embedded by the fine-tuned backbone, like the queries
                refine_config, geo.refiner = geo.refiner.config, None
                geo.set_refiner(build_refiner(geo, df, config=refine_config, split=None))
            geo.save_pretrained(out_dir)
    return geo if is_main_process() else Geolocator.from_pretrained(out_dir)


def _training_data(geo: Geolocator, df: pd.DataFrame, rule: str, aux: bool):
    """Each location's views (by the model's view rule) and its targets: coordinates, cell, auxiliary labels."""
    from pigeon.data import image_views

    views = [list(select_views(v, rule)) for v in image_views(df)]
    coords = df[["lat", "lon"]].to_numpy(np.float64)
    data = {"coords": torch.from_numpy(coords),
            "cells": torch.from_numpy(geo.cells.assign(coords[:, 0], coords[:, 1]).astype(np.int64))}
    if aux:
        data.update(_head_targets(geo, df))
    return views, data


def _unfrozen(geo: Geolocator, train_cfg: TrainConfig, config: FinetuneConfig):
    """The model the engine trains (backbone + the training loss) and what trains: the backbone's last block and
    the heads (the geocell head alone without ``aux``); everything else frozen."""
    head, backbone = geo.head, geo.backbone
    torch.manual_seed(config.seed)
    heads = head if config.aux else head.geocell
    params = backbone.unfreeze_last_block() + [p for p in heads.parameters()]
    for p in head.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    tau = train_cfg.tau_km if train_cfg.smoothing else None
    loss = GeolocatorLoss(head, np.asarray(geo.cells.centroids), tau, train_cfg.aux_weights)
    return FinetuneModel(backbone, loss), params


def _collate(views: list[list], data: dict[str, torch.Tensor], backbone, device: torch.device):
    """Index batch of locations -> every view's pixels, the location of each view, and the locations' targets."""
    def collate(idx: np.ndarray) -> dict[str, torch.Tensor]:
        locations = [views[i] for i in idx]
        pixels = torch.stack([backbone.preprocess(v) for views_ in locations for v in views_])
        owner = torch.repeat_interleave(torch.arange(len(idx)), torch.tensor([len(v) for v in locations]))
        rows = torch.as_tensor(idx)
        return {"pixels": pixels, "owner": owner.to(device), **{k: v[rows].to(device) for k, v in data.items()}}
    return collate


def _freeze(geo: Geolocator) -> None:
    """Keep the trained block's weights on the geolocator (saved as ``backbone.safetensors``) and freeze it all."""
    geo.backbone_weights = {k: v.detach().cpu().clone() for k, v in geo.backbone.named_parameters()
                            if v.requires_grad}
    geo.backbone.requires_grad_(False)
    geo.head.requires_grad_(False)
    geo.head.eval()


def _head_targets(geo: Geolocator, df: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Auxiliary targets of ``df`` laid out as the model's heads expect (unknown where the manifest lacks a column)."""
    found = aux_targets(df)
    n = len(df)
    head = geo.head
    targets = AuxTargets()
    if head.climate is not None:
        classes = list(geo.config.get("climate_classes", []))
        lookup = {c: i for i, c in enumerate(classes)}
        own = found.climate if found.climate is not None else np.full(n, -1)
        names = np.asarray(found.climate_classes, dtype=object)
        targets.climate = np.array([lookup.get(names[c], -1) if c >= 0 else -1 for c in own], np.int64)
    if head.month is not None:
        targets.month = found.month if found.month is not None else np.full(n, -1, np.int64)
    if head.regression is not None:
        columns = list(found.regression_columns)
        targets.regression = np.column_stack([
            found.regression[:, columns.index(c)] if c in columns else np.full(n, np.nan)
            for c in head.cfg.regression])
    return aux_tensors(targets, geo.standardiser)
