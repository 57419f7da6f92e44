"""``pigeon calibrate``: fit a model's calibration (temperature, sharpening, unseen-ground score) on a validation
split, e.g. for a model folder made before calibration existed."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import app
from pigeon.errors import InputError


@app.command("calibrate")
def calibrate_command(
    model: Path = typer.Argument(..., help="Model folder (from 'pigeon train'); calibration.json is written into it."),
    manifest: Path = typer.Option(..., "--manifest", help="Manifest whose --split rows (not in the gallery) "
                                  "calibrate."),
    embeddings: Path = typer.Option(None, "--embeddings", help="Embeddings folder made with the model's backbone "
                                    "(default: embed the images with the model)."),
    split: str = typer.Option("val", "--split", help="Manifest rows to calibrate on."),
    sharpen: bool = typer.Option(None, "--sharpen/--no-sharpen", help="Let the refiner's retrieval sharpen the "
                                 "cell probabilities (default: the model's posterior.sharpen)."),
    guess: str = typer.Option(None, "--guess", help="Also set the model's default objective: mode, distance or "
                              "score."),
) -> None:
    """Fit the temperature (NLL of the true cell), the retrieval sharpening and the unseen-ground reference on a
    validation split, and store them in MODEL/calibration.json.

    Example: pigeon calibrate model/ --manifest data/manifest.parquet --embeddings emb/ --split val
    """
    from pigeon.model import PRETRAINED, Geolocator, calibrate_manifest
    from pigeon.posterior import check_guess

    if not model.is_dir():
        hint = " (a bundled model is read-only: copy its folder first)" if str(model) in PRETRAINED else ""
        raise InputError(f"{model} is not a model folder{hint}; pass the folder written by 'pigeon train'")
    if guess is not None:
        check_guess(guess)
    geo = Geolocator.from_pretrained(model)
    fitted = calibrate_manifest(geo, manifest, embeddings, split=split, sharpen=sharpen)
    if guess is not None:
        geo.posterior_config = geo.posterior_config.replace(guess=guess)
    geo.save_pretrained(model)
    v = fitted.validation
    parts = [f"temperature {fitted.temperature:.3f}"]
    if fitted.sharpen_temperature is not None:
        parts.append(f"sharpening T {fitted.sharpen_temperature:.3g}")
    if fitted.flatten is not None:
        parts.append(f"unseen-ground reference of {fitted.n_val} queries")
    typer.echo(f"calibrated on {fitted.n_val} {split} location(s): {', '.join(parts)}; NLL of the true cell "
               f"{v['nll_before']:.3f} -> {v['nll_after']:.3f}; default guess {geo.posterior_config.guess} -> "
               f"{model / 'calibration.json'}")
