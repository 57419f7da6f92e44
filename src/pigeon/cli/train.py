"""``pigeon train``: fit the geolocator's heads on cached embeddings, build its refiner, write a model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app, echo, live_help
from pigeon.cli._options import described, show
from pigeon.errors import InputError
from pigeon.model._config import FinetuneConfig, TrainConfig
from pigeon.model.geoclip._config import EncoderConfig, GeoClipConfig
from pigeon.presets import preset_help


def _train(text: str, name: str) -> str:
    return described(text, TrainConfig, name, stage="train")


def _geoclip(text: str, config_cls: type, name: str, shown=show) -> str:
    return described(f"With --methods ...,geoclip: {text}", config_cls, name, shown=shown)


def methods_help() -> str:
    """The --methods help: the placing methods whose artefacts training can build."""
    from pigeon.model.placers import METHODS, default_artefacts

    built = [f"{p.name} (needs {', '.join(a.name for a in p.needs)})" for p in METHODS.values() if p.needs]
    default = [p.name for p in METHODS.values() if p.needs and all(a.name in default_artefacts() for a in p.needs)]
    return (f"Placing methods to build the artefacts of, comma-separated: {'; '.join(built)}; 'cell' needs none. "
            f"Default: {','.join(default) or 'cell'}.")


def parse_methods(methods: str | None, no_refine: bool) -> list[str] | None:
    """``--methods a,b`` as checked names of the registry; ``--no-refine`` is an alias for ``--methods cell``."""
    from pigeon.model.placers import get_placer

    if methods is None:
        return ["cell"] if no_refine else None
    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise InputError("--methods is empty; name at least one placing method, e.g. --methods refine")
    needs = {a.name for m in names for a in get_placer(m).needs}
    if no_refine and "refiner" in needs:
        raise InputError(f"--no-refine builds no refiner but --methods {methods} needs one; drop one of them")
    return names


def geoclip_config(methods: list[str] | None, seed: int | None, epochs: int | None, gallery: Path | None,
                   scales: str | None):
    """The geoclip method's build config from the ``--geoclip-*`` options (None when it is not built)."""
    if methods is None or "geoclip" not in methods:
        if any(v is not None for v in (epochs, gallery, scales)):
            raise InputError("--geoclip-epochs / --geoclip-gallery / --geoclip-scales need --methods ...,geoclip")
        return None
    config = GeoClipConfig()
    if scales is not None:
        try:
            sigmas = tuple(float(v) for v in scales.split(","))
        except ValueError:
            raise InputError(f"--geoclip-scales {scales!r}: give numbers separated by commas, e.g. 1,16,256") from None
        config = config.replace(encoder=config.encoder.replace(sigmas=sigmas))
    return config.with_options(epochs=epochs, gallery=None if gallery is None else str(gallery), seed=seed).validate()


@app.command("train", cls=live_help(methods=methods_help))
def train_command(
    manifest: Path = typer.Argument(..., help="Training manifest (.parquet or .csv); split column train/val/test."),
    cells: Path = typer.Option(..., "--cells", help="Geocells folder (from 'pigeon cells build')."),
    embeddings: Path = typer.Option(..., "--embeddings", help="Embeddings folder (from 'pigeon embed')."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    preset: str = typer.Option(None, "--preset", help=preset_help()),
    tau: float = typer.Option(None, "--tau", help=_train("Label-smoothing temperature in km.", "tau_km")),
    smoothing: bool = typer.Option(None, "--smoothing/--no-smoothing", help=_train(
        "Haversine label smoothing, or one-hot cross-entropy (ablation).", "smoothing")),
    mlp: int = typer.Option(None, "--mlp", help=_train("Hidden width of an MLP geocell head (none: linear, the "
                                                       "paper's).", "hidden_dim")),
    dropout: float = typer.Option(None, "--dropout", help=_train("Dropout on the embedding.", "dropout")),
    aux: bool = typer.Option(None, "--aux/--no-aux", help=_train("Train the auxiliary heads the data has.", "aux")),
    views: str = typer.Option(None, "--views", help=_train("mean: average the views of a location; first: one "
                                                           "view.", "views")),
    epochs: int = typer.Option(None, "--epochs", help=_train("Maximum epochs.", "epochs")),
    batch_size: int = typer.Option(None, "--batch-size", help=_train("Locations per step.", "batch_size")),
    lr: float = typer.Option(None, "--lr", help=_train("Peak AdamW learning rate.", "lr")),
    weight_decay: float = typer.Option(None, "--weight-decay", help=_train("AdamW weight decay.", "weight_decay")),
    warmup_epochs: float = typer.Option(None, "--warmup-epochs", help=_train("Linear warm-up before the cosine "
                                                                             "decay, epochs.", "warmup_epochs")),
    patience: int = typer.Option(None, "--patience", help=_train("Stop after this many epochs without a better val "
                                                                 "median km.", "patience")),
    regression_weight: float = typer.Option(None, "--regression-weight", help=_train(
        "Weight of the geodata regression loss.", "regression_weight")),
    climate_weight: float = typer.Option(None, "--climate-weight", help=_train("Weight of the Köppen climate loss.",
                                                                               "climate_weight")),
    month_weight: float = typer.Option(None, "--month-weight", help=_train("Weight of the month loss.",
                                                                           "month_weight")),
    methods: str = typer.Option(None, "--methods", help="Placing methods to build (see pigeon.model.placers)."),
    geoclip_epochs: int = typer.Option(None, "--geoclip-epochs", help=_geoclip(
        "maximum epochs of its location encoder (early stopping on the val median km).", GeoClipConfig, "epochs")),
    geoclip_gallery: Path = typer.Option(None, "--geoclip-gallery", help=_geoclip(
        "a lat,lon file of the points it places guesses on.", GeoClipConfig, "gallery",
        lambda v: "the training locations" if v is None else show(v))),
    geoclip_scales: str = typer.Option(None, "--geoclip-scales", help=_geoclip(
        "the random Fourier feature scales of its location encoder.", EncoderConfig, "sigmas")),
    no_refine: bool = typer.Option(False, "--no-refine", help="Do not build the retrieval refiner (same as "
                                   "--methods cell)."),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", help="Then fine-tune the backbone's last block "
                                        "and the heads (every loss, unless --no-aux) on the training images for this "
                                        "many epochs (slow)."),
    finetune_lr: float = typer.Option(None, "--finetune-lr", help=described(
        "Peak learning rate of the fine-tuning.", FinetuneConfig, "lr")),
    finetune_batch_size: int = typer.Option(None, "--finetune-batch-size", help=described(
        "Locations per fine-tuning step.", FinetuneConfig, "batch_size")),
    seed: int = typer.Option(None, "--seed", help=_train("Random seed.", "seed")),
    device: str = typer.Option(None, "--device", help=_train("cpu, cuda, cuda:N or auto.", "device")),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT/checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model folder."),
) -> None:
    """Train the geocell head (haversine label smoothing) and auxiliary heads on cached embeddings, then build
    what the placing methods need (the retrieval refiner) from the training locations.

    Example: pigeon train data/manifest.parquet --cells cells/ --embeddings emb/ -o model/ --preset streetview

    On several GPUs (or CPU processes): torchrun --nproc-per-node N -m pigeon train ... (the same options;
    --batch-size is the whole step's, split between the processes).
    """
    from pigeon._io import read_json
    from pigeon.data import read_manifest
    from pigeon.model import finetune, train
    from pigeon.presets import resolve

    names = parse_methods(methods, no_refine)
    config = resolve(
        TrainConfig, "train", preset,
        tau_km=tau, smoothing=smoothing, hidden_dim=mlp, dropout=dropout, aux=aux, views=views, epochs=epochs,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs, patience=patience,
        seed=seed,
        regression_weight=regression_weight, climate_weight=climate_weight, month_weight=month_weight,
        device=device,
    )
    geoclip = geoclip_config(names, seed, geoclip_epochs, geoclip_gallery, geoclip_scales)
    geo = train(manifest, cells, embeddings, out, config, methods=names, preset=preset, resume=resume,
                overwrite=overwrite, artefact_configs={"geoclip": geoclip} if geoclip is not None else None)
    best = read_json(out / "metrics.json")["best"]
    heads = ", ".join(["geocell"] + [n for n in ("climate", "month", "regression") if getattr(geo.head, n) is not None])
    from pigeon.model.placers import artefacts

    built = "".join(f"; {name}: {artefacts()[name].describe(value)}" for name, value in geo.artefacts.items())
    echo(f"trained {heads} head(s) on {geo.config['data']['n_train']} locations, {geo.n_cells} cells; "
               f"best epoch {best['epoch']}: val median {best['val_median_km']:.1f} km (head alone), "
               f"cell accuracy {best['val_acc']:.3f}{built}; methods: {', '.join(geo.methods)} -> {out}")
    if finetune_epochs:
        finetune(geo, read_manifest(manifest), out, epochs=finetune_epochs, seed=config.seed, aux=config.aux,
                 device=config.device, lr=finetune_lr, batch_size=finetune_batch_size)
        echo(f"fine-tuned the last backbone block for {finetune_epochs} epoch(s) -> {out}")
