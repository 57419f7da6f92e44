"""Fine-tuning on images with the backbone's last block unfrozen (PIGEON's last step; slower than the head path).

Only the geocell loss is used here (haversine-smoothed as in head training); the auxiliary heads keep their
weights. The backbone stays in eval mode (frozen batch-norm statistics) while its last block's weights train.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pigeon._io import atomic_path
from pigeon._progress import progress
from pigeon.errors import InputError
from pigeon.model._fit import lr_at
from pigeon.model._geolocator import Geolocator
from pigeon.model._loss import geocell_targets, soft_cross_entropy
from pigeon.model._views import pool_views, select_views

FINETUNE_LOG = "finetune_log.jsonl"


def finetune(geo: Geolocator, df: pd.DataFrame, out_dir: str | os.PathLike, *, epochs: int = 1, lr: float = 1e-4,
             batch_size: int = 16, seed: int = 0) -> Geolocator:
    """Train the backbone's last block and the geocell head end to end on a manifest's training images.

    Args:
        geo: a trained geolocator (its head is the starting point).
        df: a manifest (``split == "train"`` rows are used when it has a split column).
        out_dir: model folder to write (``backbone.safetensors`` holds the fine-tuned block).
        epochs, lr, batch_size, seed: AdamW with warm-up + cosine over ``epochs``; ``batch_size`` locations
            (each with all its views) per step.

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
    views = [list(select_views(v, geo.view_rule)) for v in image_views(df)]
    coords = torch.from_numpy(df[["lat", "lon"]].to_numpy(np.float64))
    cells = torch.from_numpy(geo.cells.assign(coords[:, 0].numpy(), coords[:, 1].numpy()))
    centroids = torch.tensor(np.asarray(geo.cells.centroids), dtype=torch.float64)
    train_cfg = geo.config.get("train", {})
    tau = train_cfg.get("tau_km") if train_cfg.get("smoothing", True) else None

    backbone, head = geo.backbone, geo.head
    refine_config = geo.refiner.config if geo.refiner is not None else None
    torch.manual_seed(seed)
    params = backbone.unfreeze_last_block() + list(head.geocell.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=train_cfg.get("weight_decay", 0.01), foreach=True)
    steps = int(np.ceil(len(views) / batch_size))
    total, warmup = epochs * steps, max(1, steps // 10)
    backbone.eval()
    head.train()
    history = []
    with progress() as bar:
        task = bar.add_task("fine-tuning", total=total, info="")
        for epoch in range(epochs):
            order = np.random.default_rng(seed + epoch).permutation(len(views))
            loss_sum = 0.0
            for i in range(steps):
                for group in opt.param_groups:
                    group["lr"] = lr_at(epoch * steps + i, total, warmup, lr)
                rows = order[i * batch_size:(i + 1) * batch_size]
                x = _location_embeddings(backbone, [views[r] for r in rows])
                logits = head(x)["geocell"]
                loss = soft_cross_entropy(logits, geocell_targets(coords[rows].to(x.device), centroids.to(x.device),
                                                                  cells[rows].to(x.device), tau))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(rows)
                bar.update(task, advance=1, info=f"loss {loss.item():.3f}")
            history.append({"epoch": epoch + 1, "train_loss": loss_sum / len(views)})
    geo.backbone_weights = {k: v.detach().cpu().clone() for k, v in backbone.named_parameters() if v.requires_grad}
    backbone.requires_grad_(False)
    head.eval()
    geo.config["finetune"] = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                              "n_train": len(views), "history": history}
    if geo.refiner is not None:  # the gallery must be embedded by the fine-tuned backbone, like the queries
        from pigeon.refine import build_refiner

        geo.refiner = None
        geo.set_refiner(build_refiner(geo, df, config=refine_config, split=None))
    geo.save_pretrained(out_dir)
    with atomic_path(Path(out_dir) / FINETUNE_LOG) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
    return geo


def _location_embeddings(backbone, locations: list[list]) -> torch.Tensor:
    """Differentiable mean view embedding per location, ``(B, D)``."""
    flat = [view for views in locations for view in views]
    pixels = backbone.prepare(torch.stack([backbone.preprocess(v) for v in flat]))
    emb = backbone(pixels).float()
    bounds = np.cumsum([0] + [len(v) for v in locations])
    return torch.stack([pool_views(emb[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
