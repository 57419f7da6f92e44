"""``pigeon train``: fit the geolocator's heads on cached embeddings and write a model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app


@app.command("train")
def train_command(
    manifest: Path = typer.Argument(..., help="Training manifest (.parquet or .csv); split column train/val/test."),
    cells: Path = typer.Option(..., "--cells", help="Geocells folder (from 'pigeon cells build')."),
    embeddings: Path = typer.Option(..., "--embeddings", help="Embeddings folder (from 'pigeon embed')."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    tau: float = typer.Option(75.0, "--tau", help="Label-smoothing temperature in km (75 street view, 65 photos)."),
    no_smoothing: bool = typer.Option(False, "--no-smoothing", help="One-hot cross-entropy (ablation)."),
    mlp: int = typer.Option(None, "--mlp", help="Hidden width of an MLP geocell head (default: linear, the paper's)."),
    dropout: float = typer.Option(0.1, "--dropout", help="Dropout on the embedding."),
    no_aux: bool = typer.Option(False, "--no-aux", help="Train without the auxiliary heads."),
    views: str = typer.Option("mean", "--views", help="mean: average the views of a location; first: one view."),
    epochs: int = typer.Option(40, "--epochs", help="Maximum epochs."),
    batch_size: int = typer.Option(256, "--batch-size", help="Locations per step."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak AdamW learning rate."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay."),
    warmup_epochs: float = typer.Option(1.0, "--warmup-epochs", help="Linear warm-up before the cosine decay."),
    patience: int = typer.Option(8, "--patience", help="Stop after this many epochs without a better val median km."),
    regression_weight: float = typer.Option(8.0, "--regression-weight", help="Weight of the geodata regression loss."),
    climate_weight: float = typer.Option(2.0, "--climate-weight", help="Weight of the Köppen climate loss."),
    month_weight: float = typer.Option(1.0, "--month-weight", help="Weight of the month loss."),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", help="Then fine-tune the backbone's last block "
                                        "and the heads (every loss, unless --no-aux) on the training images for this "
                                        "many epochs (slow)."),
    finetune_lr: float = typer.Option(1e-4, "--finetune-lr", help="Peak learning rate of the fine-tuning."),
    finetune_batch_size: int = typer.Option(16, "--finetune-batch-size", help="Locations per fine-tuning step."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT/checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model folder."),
) -> None:
    """Train the geocell head (haversine label smoothing) and auxiliary heads on cached embeddings.

    Example: pigeon train data/manifest.parquet --cells cells/ --embeddings emb/ -o model/
    """
    from pigeon._io import read_json
    from pigeon.data import read_manifest
    from pigeon.model import TrainConfig, finetune, train

    config = TrainConfig(
        tau_km=tau, smoothing=not no_smoothing, hidden_dim=mlp, dropout=dropout, aux=not no_aux, views=views,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
        patience=patience, seed=seed, regression_weight=regression_weight, climate_weight=climate_weight,
        month_weight=month_weight, device=device,
    )
    geo = train(manifest, cells, embeddings, out, config, resume=resume, overwrite=overwrite)
    best = read_json(out / "metrics.json")["best"]
    heads = ", ".join(["geocell"] + [n for n in ("climate", "month", "regression") if getattr(geo.head, n) is not None])
    typer.echo(f"trained {heads} head(s) on {geo.config['data']['n_train']} locations, {geo.n_cells} cells; "
               f"best epoch {best['epoch']}: val median {best['val_median_km']:.1f} km, "
               f"cell accuracy {best['val_acc']:.3f} -> {out}")
    if finetune_epochs:
        finetune(geo, read_manifest(manifest), out, epochs=finetune_epochs, lr=finetune_lr,
                 batch_size=finetune_batch_size, seed=seed, aux=not no_aux, device=device)
        typer.echo(f"fine-tuned the last backbone block for {finetune_epochs} epoch(s) -> {out}")
