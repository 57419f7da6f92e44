"""``pigeon pretrain``: contrastive pretraining of a backbone on synthetic geographic captions."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app, echo
from pigeon.cli._options import described
from pigeon.presets import preset_help
from pigeon.pretrain._config import PretrainConfig


def _pre(text: str, name: str) -> str:
    return described(text, PretrainConfig, name, stage="pretrain")


_DEFAULTS = PretrainConfig()
HELP = f"""Pretrain on (image, caption) pairs: symmetric InfoNCE plus auxiliary losses (AdamW betas
{_DEFAULTS.betas[0]:g}/{_DEFAULTS.betas[1]:g}, eps {_DEFAULTS.eps:g}, weight decay {_DEFAULTS.weight_decay:g}, linear
schedule with warm-up, gradient clipping at {_DEFAULTS.clip_norm:g}).

Example: pigeon pretrain enriched.parquet --backbone efficientnet:lite0 -o pretrained/ --epochs 2 --lr 1e-4

On several GPUs: torchrun --nproc-per-node N -m pigeon pretrain ... (--batch-size is the whole contrastive
batch, split between the processes; the embeddings are gathered so that every batch's negatives are all of it).
"""


@app.command("pretrain", help=HELP)
def pretrain_command(
    manifest: Path = typer.Argument(..., help="Enriched manifest (from 'pigeon data enrich'); its train split is used."),
    backbone: str = typer.Option(None, "--backbone", "-b", help="A backbone with a text side: efficientnet:lite0 "
                                 "(offline, with all-MiniLM-L6-v2), clip:FOLDER, open_clip:ARCH:CKPT, or an earlier "
                                 "pretrained folder; default: the offline EfficientNet-Lite0."),
    out: Path = typer.Option(..., "--out", "-o", help="Backbone folder to write (then: pigeon embed --backbone OUT)."),
    preset: str = typer.Option(None, "--preset", help=preset_help()),
    epochs: int = typer.Option(None, "--epochs", help=_pre("Epochs.", "epochs")),
    batch_size: int = typer.Option(None, "--batch-size", help=_pre("Images per contrastive batch, each location at "
                                                                   "most once.", "batch_size")),
    grad_accum: int = typer.Option(None, "--grad-accum", help=_pre("Batches per optimiser step.", "grad_accum")),
    lr: float = typer.Option(None, "--lr", help=_pre("Peak learning rate of the pretrained layers.", "lr")),
    head_lr: float = typer.Option(None, "--head-lr", help=_pre("Learning rate of the new layers.", "head_lr")),
    warmup: float = typer.Option(None, "--warmup", help=_pre("Share of the steps spent warming up.",
                                                             "warmup_ratio")),
    layers: str = typer.Option(None, "--layers", help=_pre("all (the paper) or last: the last block of each tower.",
                                                           "layers")),
    no_aux: bool = typer.Option(False, "--no-aux", help="Without the auxiliary climate/month/geodata losses."),
    seed: int = typer.Option(None, "--seed", help=_pre("Random seed.", "seed")),
    device: str = typer.Option(None, "--device", help=_pre("cpu, cuda, cuda:N or auto.", "device")),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help=_pre(
        "Also checkpoint every N optimiser steps (0: at the end of each epoch).", "checkpoint_every")),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT/checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing pretrained folder."),
) -> None:
    """Contrastive pretraining of a backbone (the help text, with the optimiser's defaults, is :data:`HELP`)."""
    from pigeon.backbones import DEFAULT_BACKBONE
    from pigeon.presets import resolve
    from pigeon.pretrain import pretrain

    backbone = backbone or DEFAULT_BACKBONE
    config = resolve(PretrainConfig, "pretrain", preset, epochs=epochs, batch_size=batch_size, grad_accum=grad_accum,
                     lr=lr, head_lr=head_lr, warmup_ratio=warmup, layers=layers, seed=seed, device=device,
                     checkpoint_every=checkpoint_every, aux=False if no_aux else None)
    result = pretrain(manifest, backbone, out, config, preset=preset, resume=resume, overwrite=overwrite)
    last = result.history[-1]
    echo(f"pretrained {backbone} for {last['epoch']} epoch(s): loss {last['train_loss']:.3f}, in-batch "
               f"image->caption accuracy {last['train_retrieval_acc']:.2f} -> {out}\n"
               f"embed with: pigeon embed {manifest} --backbone {out} -o embeddings/")
