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

from pigeon._device import barrier, is_main_process
from pigeon.engine import Engine, OptimConfig, ShuffleSampler
from pigeon.errors import InputError
from pigeon.model._aux import AuxTargets, aux_targets, aux_tensors
from pigeon.model._build import build_refiner
from pigeon.model._fit import GeolocatorLoss, TrainConfig
from pigeon.model._geolocator import Geolocator
from pigeon.model._views import select_views

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
        emb = self.backbone(self.backbone.prepare(pixels)).float()
        sums = emb.new_zeros(n, emb.shape[1]).index_add_(0, owner, emb)
        return sums / torch.bincount(owner, minlength=n).clamp_min(1)[:, None]

    def forward(self, batch: dict[str, torch.Tensor]):
        x = self.embed(batch["pixels"], batch["owner"], len(batch["cells"]))
        return self.task.loss(self.task.head(x), batch)


def finetune(geo: Geolocator, df: pd.DataFrame, out_dir: str | os.PathLike, *, epochs: int = 1, lr: float = 1e-4,
             batch_size: int = 16, seed: int = 0, aux: bool = True, grad_accum: int = 1, device: str = "auto",
             resume: bool = False) -> Geolocator:
    """Train the backbone's last block and the heads end to end on a manifest's training images.

    Args:
        geo: a trained geolocator (its heads are the starting point).
        df: a manifest (``split == "train"`` rows are used when it has a split column); its enrichment columns
            (``koppen``, ``month``/``taken_at``, geodata) feed the auxiliary losses.
        out_dir: model folder to write (``backbone.safetensors`` holds the fine-tuned block; ``finetune/`` the log,
            curves and checkpoint).
        epochs, lr, batch_size, seed, grad_accum: AdamW with warm-up (a tenth of an epoch) + cosine over
            ``epochs``; ``batch_size`` locations (each with all its views) per micro-batch.
        aux: also train the auxiliary heads, whose losses then shape the unfrozen block (False: geocell loss only,
            the ablation).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        resume: continue an interrupted fine-tuning from ``out_dir/finetune``.

    Under ``torchrun`` each process embeds and trains on ``batch_size / processes`` locations of each batch; rank 0
    then re-embeds the refiner's gallery and writes the model folder while the others wait, and every process
    returns the saved model.

    Returns:
        The fine-tuned geolocator, also saved in ``out_dir``.
    """
    from pigeon.data import image_views

    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise InputError(f"fine-tuning needs epochs >= 1, lr > 0 and batch_size >= 1; got {epochs}, {lr}, {batch_size}")
    if "split" in df.columns:
        df = df[df["split"] == "train"]
    if df.empty:
        raise InputError("no training rows to fine-tune on; the manifest needs split 'train' rows")
    train_cfg = TrainConfig.from_dict(geo.config.get("train", {}))
    views = [list(select_views(v, train_cfg.views)) for v in image_views(df)]
    coords = df[["lat", "lon"]].to_numpy(np.float64)
    data = {"coords": torch.from_numpy(coords),
            "cells": torch.from_numpy(geo.cells.assign(coords[:, 0], coords[:, 1]).astype(np.int64))}
    if aux:
        data.update(_head_targets(geo, df))

    head, backbone = geo.head, geo.backbone
    torch.manual_seed(seed)
    heads = head if aux else head.geocell
    params = backbone.unfreeze_last_block() + [p for p in heads.parameters()]
    for p in head.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    tau = train_cfg.tau_km if train_cfg.smoothing else None
    model = FinetuneModel(backbone, GeolocatorLoss(head, np.asarray(geo.cells.centroids), tau, train_cfg.aux_weights))
    config = OptimConfig(epochs=epochs, lr=lr, weight_decay=train_cfg.weight_decay, warmup_epochs=0.1,
                         schedule="cosine", grad_accum=grad_accum, seed=seed, device=device)
    engine = Engine(config, Path(out_dir) / FINETUNE_DIR, log_name="finetune_log.jsonl", description="fine-tuning")

    def collate(idx: np.ndarray) -> dict[str, torch.Tensor]:
        locations = [views[i] for i in idx]
        pixels = torch.stack([backbone.preprocess(v) for views_ in locations for v in views_])
        owner = torch.repeat_interleave(torch.arange(len(idx)), torch.tensor([len(v) for v in locations]))
        rows = torch.as_tensor(idx)
        return {"pixels": pixels, "owner": owner.to(engine.device),
                **{k: v[rows].to(engine.device) for k, v in data.items()}}

    sampler = ShuffleSampler(len(views), engine.per_rank(batch_size), seed, rank=engine.rank,
                             world_size=engine.world_size)
    result = engine.fit(model, sampler, collate, param_groups=[{"params": params}], resume=resume,
                        fingerprint={"n_train": len(views), "aux": aux, "batch_size": batch_size})
    geo.backbone_weights = {k: v.detach().cpu().clone() for k, v in backbone.named_parameters() if v.requires_grad}
    backbone.requires_grad_(False)
    head.requires_grad_(False)
    head.eval()
    geo.config["finetune"] = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "grad_accum": grad_accum,
                              "seed": seed, "aux": aux, "n_train": len(views), "history": result.history}
    if not is_main_process():  # rank 0 writes the model folder; the others load it once it is complete
        barrier()
        return Geolocator.from_pretrained(out_dir)
    if geo.refiner is not None:  # the gallery must be embedded by the fine-tuned backbone, like the queries
        refine_config, geo.refiner = geo.refiner.config, None
        geo.set_refiner(build_refiner(geo, df, config=refine_config, split=None))
    geo.save_pretrained(out_dir)
    barrier()
    return geo


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
