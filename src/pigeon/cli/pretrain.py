"""``pigeon pretrain``: contrastive pretraining of a backbone on synthetic geographic captions."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app, echo


@app.command("pretrain")
def pretrain_command(
    manifest: Path = typer.Argument(..., help="Enriched manifest (from 'pigeon data enrich'); its train split is used."),
    backbone: str = typer.Option(None, "--backbone", "-b", help="A backbone with a text side: efficientnet:lite0 "
                                 "(offline, with all-MiniLM-L6-v2), clip:FOLDER, open_clip:ARCH:CKPT, or an earlier "
                                 "pretrained folder; default: the offline EfficientNet-Lite0."),
    out: Path = typer.Option(..., "--out", "-o", help="Backbone folder to write (then: pigeon embed --backbone OUT)."),
    preset: str = typer.Option(None, "--preset", help="streetview (PIGEON captions, 20 epochs, lr 1e-6) or photo "
                               "(PIGEOTTO captions, 4 epochs, lr 5e-7); default streetview."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs (default: the preset's)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Images per contrastive batch, each location at most "
                                   "once (default 32)."),
    grad_accum: int = typer.Option(None, "--grad-accum", help="Batches per optimiser step (default 8)."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate of the pretrained layers (default: the preset's)."),
    head_lr: float = typer.Option(None, "--head-lr", help="Learning rate of the new layers (default 1e-3)."),
    warmup: float = typer.Option(None, "--warmup", help="Share of the steps spent warming up (default: the preset's)."),
    layers: str = typer.Option(None, "--layers", help="all (the paper) or last: the last block of each tower."),
    no_aux: bool = typer.Option(False, "--no-aux", help="Without the auxiliary climate/month/geodata losses."),
    seed: int = typer.Option(None, "--seed", help="Random seed (default 0)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Also checkpoint every N optimiser steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT/checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing pretrained folder."),
) -> None:
    """Pretrain on (image, caption) pairs: symmetric InfoNCE plus auxiliary losses (AdamW betas 0.9/0.98,
    eps 1e-6, weight decay 1e-3, linear schedule with warm-up, gradient clipping at 1.0).

    Example: pigeon pretrain enriched.parquet --backbone efficientnet:lite0 -o pretrained/ --epochs 2 --lr 1e-4

    On several GPUs: torchrun --nproc-per-node N -m pigeon pretrain ... (--batch-size is the whole contrastive
    batch, split between the processes; the embeddings are gathered so that every batch's negatives are all of it).
    """
    from pigeon.backbones import DEFAULT_BACKBONE
    from pigeon.pretrain import PretrainConfig, pretrain

    backbone = backbone or DEFAULT_BACKBONE
    given = dict(preset=preset, epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr, head_lr=head_lr,
                 warmup_ratio=warmup, layers=layers, seed=seed, device=device, checkpoint_every=checkpoint_every)
    given = {k: v for k, v in given.items() if v is not None} | ({"aux": False} if no_aux else {})
    config = PretrainConfig(**given)
    result = pretrain(manifest, backbone, out, config, resume=resume, overwrite=overwrite)
    last = result.history[-1]
    echo(f"pretrained {backbone} for {last['epoch']} epoch(s): loss {last['train_loss']:.3f}, in-batch "
               f"image->caption accuracy {last['train_retrieval_acc']:.2f} -> {out}\n"
               f"embed with: pigeon embed {manifest} --backbone {out} -o embeddings/")
