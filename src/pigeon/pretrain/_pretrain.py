"""Multi-task contrastive pretraining: symmetric image-caption InfoNCE plus auxiliary losses on the image side.

Every view of a training location is a sample, captioned afresh each epoch (seeded) by
:func:`pigeon.geography.captions` with the preset's templates and probabilities; the compass sentence uses each
view's own heading (``heading + k * 360 / views``, views evenly spread as in a panorama). Batches never hold two
views of one location (:class:`pigeon.engine.LocationBatchSampler`), since those would be false negatives.

Under ``torchrun`` the batch is split between the processes and the image and caption embeddings are gathered from
all of them (with their gradients), so the negatives span the whole batch and the loss is the single-process one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from pigeon._device import distributed_info, main_process_writes
from pigeon._io import provenance
from pigeon.engine import Engine, LocationBatchSampler, refuse_existing
from pigeon.errors import InputError
from pigeon.model._aux import N_MONTHS, Standardiser, aux_loss, aux_targets, aux_tensors
from pigeon.pretrain._config import PretrainConfig
from pigeon.pretrain._towers import Towers, load_towers, write_backbone_folder

#: Enrichment columns the captions need (``pigeon data enrich`` adds them).
CAPTION_COLUMNS = ("country_name", "admin1", "city", "koppen", "drive_side")
PRETRAIN_LOG = "pretrain_log.jsonl"
PANELS = [
    ("loss", [("train_loss", "total"), ("train_contrastive_loss", "image-caption InfoNCE"),
              ("train_aux_loss", "auxiliary")]),
    ("in-batch image -> caption accuracy", [("train_retrieval_acc", "train")]),
    ("learning rate (pretrained layers)", [("lr", "lr")]),
]


def clip_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor,
              logit_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of matching rows, and the in-batch image -> text accuracy.

    Rows ``i`` of the two ``(N, E)`` embeddings are a pair; the other rows are the negatives. The logits are
    cosine similarities times ``exp(logit_scale)`` (capped at 100, as in CLIP).
    """
    img = F.normalize(image_embeds.float(), dim=-1)
    txt = F.normalize(text_embeds.float(), dim=-1)
    logits = logit_scale.float().exp().clamp(max=100) * img @ txt.T
    labels = torch.arange(len(img), device=img.device)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    return loss, (logits.argmax(1) == labels).float().mean()


class AuxHeads(nn.Module):
    """Linear climate / month / geodata-regression heads on the (layer-normalised) image features."""

    def __init__(self, dim: int, n_climate: int, n_months: int, n_regression: int) -> None:
        super().__init__()
        self.climate = nn.Linear(dim, n_climate) if n_climate else None
        self.month = nn.Linear(dim, n_months) if n_months else None
        self.regression = nn.Linear(dim, n_regression) if n_regression else None

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.layer_norm(features, features.shape[-1:])
        return {name: head(h) for name in ("climate", "month", "regression")
                if (head := getattr(self, name)) is not None}


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Every process's rows of ``x`` concatenated in rank order, differentiable (``x`` in a single process).

    Gradients flow back to each process's own rows (summed over the processes), so when every process computes the
    same loss on the gathered batch, ``DistributedDataParallel``'s averaging gives the single-process gradient.
    """
    if distributed_info()[1] == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


class ContrastiveModel(nn.Module):
    """Towers plus auxiliary heads with the pretraining loss: ``forward(batch) -> (loss, stats, n)``.

    The contrastive loss is computed on the batch of all processes (:func:`gather_batch`); the auxiliary losses on
    this process's samples.
    """

    def __init__(self, towers: Towers, aux_heads: AuxHeads | None, aux_weights: dict[str, float]) -> None:
        super().__init__()
        self.towers, self.aux_heads, self.aux_weights = towers, aux_heads, aux_weights

    def forward(self, batch: dict[str, Any]):
        features, image_embeds = self.towers.encode_image(batch["pixels"])
        text_embeds = self.towers.encode_text(batch["texts"])
        loss, acc = clip_loss(gather_batch(image_embeds), gather_batch(text_embeds), self.towers.logit_scale)
        stats = {"contrastive_loss": loss.detach(), "retrieval_acc": acc}
        if self.aux_heads is not None:
            extra = aux_loss(self.aux_heads(features), batch, self.aux_weights)
            stats["aux_loss"] = extra.detach()
            loss = loss + extra
        return loss, stats, len(batch["texts"])


class CaptionedViews:
    """One row per view of the training locations, captioned afresh for each epoch."""

    def __init__(self, df: pd.DataFrame, style: str, seed: int) -> None:
        from pigeon.data import image_views

        views = image_views(df)
        counts = np.array([len(v) for v in views])
        self.groups = np.repeat(np.arange(len(df)), counts)
        self.paths = [p for v in views for p in v]
        table = df.iloc[self.groups].reset_index(drop=True)
        if "heading" in table.columns:
            k = np.concatenate([np.arange(c) for c in counts])
            spread = 360.0 * k / counts[self.groups]
            table["heading"] = (pd.to_numeric(table["heading"], errors="coerce").to_numpy() + spread) % 360.0
        self.table, self.style, self.seed = table, style, seed
        self.texts = np.empty(0, dtype=object)

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        from pigeon.geography import captions

        self.texts = captions(self.table, self.style, seed=self.seed * 1_000_003 + epoch).to_numpy()


class _EpochSampler:
    """The location-unique sampler, telling the captions which epoch it is."""

    def __init__(self, sampler: LocationBatchSampler, views: CaptionedViews) -> None:
        self.sampler, self.views = sampler, views

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.views.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return iter(self.sampler)


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns: the trained towers (eval mode, CPU), the per-epoch history, the folder."""

    towers: Towers
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None


def check_caption_columns(df: pd.DataFrame, source: str = "MANIFEST") -> None:
    """Raise a one-line error naming the enrichment columns captions need that ``df`` lacks."""
    missing = [c for c in CAPTION_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"the manifest lacks the enrichment column(s) {', '.join(missing)} that captions need; add "
                         f"them with 'pigeon data enrich {source} -o enriched.parquet' and pretrain on that file")


def pretrain(manifest: str | os.PathLike | pd.DataFrame, backbone: str, out_dir: str | os.PathLike,
             config: PretrainConfig | None = None, *, preset: str | None = None, resume: bool = False,
             overwrite: bool = False) -> PretrainResult:
    """Pretrain a backbone on (image, synthetic caption) pairs of a manifest's training split.

    Args:
        manifest: an enriched manifest (``pigeon data enrich``) or its path; rows with ``split == "train"`` are
            used (all rows without a split column).
        backbone: a backbone with a text side: ``efficientnet:*`` (paired with all-MiniLM-L6-v2), ``clip:<folder>``,
            ``open_clip:<arch>:<ckpt>`` or a folder from an earlier ``pigeon pretrain``.
        out_dir: the backbone folder to write: it loads like any backbone (``pigeon embed --backbone out_dir``)
            and holds ``meta.json`` (captions' settings, training config), the log, ``curves.png`` and the checkpoint.
        config: a :class:`PretrainConfig` (default: the preset's, the paper's optimiser); ``batch_size`` is the
            whole contrastive batch, split between the processes under ``torchrun``.
        preset: ``"streetview"`` (PIGEON, the default) or ``"photo"`` (PIGEOTTO) when ``config`` is None
            (:mod:`pigeon.presets`), recorded in ``meta.json``.
        resume: continue an interrupted run from ``out_dir/checkpoint``.
        overwrite: replace a finished folder.

    Returns:
        A :class:`PretrainResult`.
    """
    from pigeon.backbones import PRETRAINED_MARKER
    from pigeon.presets import resolve

    config = (config or resolve(PretrainConfig, "pretrain", preset)).validate()
    out = refuse_existing(out_dir, PRETRAINED_MARKER, "a pretrained backbone", resume=resume, overwrite=overwrite)
    df, source = _training_manifest(manifest)
    views = CaptionedViews(df, config.caption_style, config.seed)
    engine = Engine(config.optim(), out, log_name=PRETRAIN_LOG, description="pretraining", panels=PANELS)
    sampler = LocationBatchSampler(views.groups, engine.per_rank(config.batch_size), config.seed, rank=engine.rank,
                                   world_size=engine.world_size)
    torch.manual_seed(config.seed)
    towers = load_towers(backbone, embed_dim=config.embed_dim, max_tokens=config.max_tokens)
    pretrained, new = towers.trainable(config.layers)
    targets, aux_heads = _aux(df, towers, config)
    if aux_heads is not None:
        new = new + list(aux_heads.parameters())
    result = engine.fit(ContrastiveModel(towers, aux_heads, config.aux_weights), _EpochSampler(sampler, views),
                        _collate(views, towers, targets, engine.device),
                        param_groups=[{"params": pretrained, "lr": config.lr}, {"params": new, "lr": config.head_lr}],
                        fingerprint={"backbone": backbone, "n_views": len(views),
                                     "task": {k: v for k, v in config.to_dict().items()
                                              if k not in ("epochs", "device", "checkpoint_every")}},
                        resume=resume)
    towers.requires_grad_(False).cpu().eval()
    with main_process_writes() as writer:  # rank 0 writes the folder; the others return once it is complete
        if writer:
            from pigeon.geography import caption_settings

            meta = provenance("pretrained-backbone", {
                "base": backbone, "preset": preset, "config": config.to_dict(),
                "captions": caption_settings(config.caption_style) | {
                    "sampling": "afresh each epoch, seed * 1000003 + epoch"},
                "data": {"manifest": source, "n_locations": len(df), "n_views": len(views)},
                "aux_heads": sorted(targets), "final": result.history[-1],
            })
            write_backbone_folder(towers, out, backbone, meta)
    return PretrainResult(towers, result.history, out)


def _training_manifest(manifest: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The training rows of the manifest (checked for the caption columns), renumbered, and how to name the file."""
    from pigeon.data import read_manifest, training_rows

    source = str(manifest) if not isinstance(manifest, pd.DataFrame) else "MANIFEST"
    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    check_caption_columns(df, source)
    attrs = dict(df.attrs)
    df = training_rows(df).reset_index(drop=True)
    df.attrs = attrs
    return df, source


def _collate(views: CaptionedViews, towers: Towers, targets: dict[str, torch.Tensor], device: torch.device):
    """Index batch of views -> pixels, this epoch's captions and the auxiliary targets of their locations."""
    preprocess = towers.backbone.preprocess

    def collate(idx: np.ndarray) -> dict[str, Any]:
        groups = torch.as_tensor(views.groups[idx])
        return {"pixels": torch.stack([preprocess(views.paths[i]) for i in idx]),
                "texts": [views.texts[i] for i in idx],
                **{k: v[groups].to(device) for k, v in targets.items()}}
    return collate


def _aux(df: pd.DataFrame, towers: Towers, config: PretrainConfig) -> tuple[dict[str, torch.Tensor], AuxHeads | None]:
    """Per-location auxiliary targets and the heads that predict them (none without ``config.aux``)."""
    if not config.aux:
        return {}, None
    aux = aux_targets(df)
    standardiser = Standardiser.fit(aux.regression_columns, aux.regression) if aux.regression is not None else None
    targets = aux_tensors(aux, standardiser)
    if not targets:
        return {}, None
    heads = AuxHeads(towers.backbone.embed_dim, len(aux.climate_classes) if "climate" in targets else 0,
                     N_MONTHS if "month" in targets else 0,
                     len(aux.regression_columns) if "regression" in targets else 0)
    return targets, heads
