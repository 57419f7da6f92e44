"""``pigeon predict``: geolocate images, or every row of a manifest, with a trained model folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pigeon.cli._app import app, live_help
from pigeon.model._config import DEFAULT_TOP_K
from pigeon.errors import InputError


def method_help() -> str:
    """The --method help: every registered placing method with its description."""
    from pigeon.model.placers import METHODS, methods_help

    defaults = sorted((p for p in METHODS.values() if p.preference is not None), key=lambda p: p.preference)
    return (f"Placing method, one of {methods_help()}. Default: the first the model can use of "
            f"{', '.join(p.name for p in defaults)}.")


def resolve_method_option(method: str | None, no_refine: bool) -> str | None:
    """``--method`` with ``--no-refine`` as its alias for ``cell``; the name is checked against the registry."""
    from pigeon.model.placers import get_placer

    if no_refine:
        if method not in (None, "cell"):
            raise InputError(f"--no-refine means --method cell; it contradicts --method {method}")
        method = "cell"
    if method is not None:
        get_placer(method)
    return method


#: The options that take a model's parts from elsewhere (``pigeon predict`` and ``pigeon serve``).
BACKBONE_HELP = ("The model's backbone from elsewhere, e.g. clip:LOCAL_DIR (the same network downloaded where the "
                 "model hub is reachable; GeoCLIP's model needs openai/clip-vit-large-patch14).")
GALLERY_HELP = ("A lat,lon file (CSV or Parquet) of the points the geoclip method places guesses on, instead of "
                "the model's gallery (e.g. GeoCLIP's 100K MP-16 gallery).")


@app.command("predict", cls=live_help(method=method_help))
def predict_command(
    model: Path = typer.Argument(..., help="Model folder (from 'pigeon train' or 'pigeon demo'), a bundled model "
                                 "(demo, geoclip) or a hub id."),
    images: list[Path] = typer.Argument(None, help="Image files; see --views for multi-view locations."),
    views: int = typer.Option(1, "--views", help="Consecutive IMAGEs that are the views of one location (e.g. 4)."),
    top_k: int = typer.Option(DEFAULT_TOP_K, "--top-k", help="Candidate cells to list per location."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    probability_map: Path = typer.Option(None, "--probability-map", help="Write every cell's probability and the "
                                         "credible region as GeoJSON (one location only)."),
    manifest: Path = typer.Option(None, "--manifest", help="Predict every row of this manifest instead of IMAGEs."),
    split: str = typer.Option(None, "--split", help="With --manifest: only rows of this split (e.g. test)."),
    embeddings: Path = typer.Option(None, "--embeddings", help="With --manifest: read cached embeddings made "
                                    "with the model's backbone instead of embedding the images."),
    out: Path = typer.Option(None, "--out", "-o", help="With --manifest: predictions file (.csv or .parquet)."),
    method: str = typer.Option(None, "--method", help="Placing method (see the registry: pigeon.model.placers)."),
    no_refine: bool = typer.Option(False, "--no-refine", help="The head alone: same as --method cell."),
    guess: str = typer.Option(None, "--guess", help="What the guess optimises: mode (the placing method's own "
                              "answer), distance (least expected km from the truth) or score (most expected GeoGuessr "
                              "points); default: the model's (config.json posterior.guess)."),
    credible: float = typer.Option(None, "--credible", help="Mass of the credible region: the fewest cells holding "
                                   "it (0.9)."),
    p_within: bool = typer.Option(None, "--p-within/--no-p-within", help="Report P(within 1/25/200/750/2500 km) "
                                  "of the guess (default: when the model has a gallery; --p-within requires one)."),
    strict: bool = typer.Option(False, "--strict", help="With --manifest: stop at the first unreadable image "
                                "instead of listing it in the failures file."),
    backbone: str = typer.Option(None, "--backbone", help=BACKBONE_HELP),
    gallery: Path = typer.Option(None, "--gallery", help=GALLERY_HELP),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: CUDA when available)."),
    exact_decode: bool = typer.Option(False, "--exact-decode", help="Decode every pixel and resize the whole image "
                                      "(as the transformers processors do) instead of JPEG draft mode / reduce to "
                                      "the backbone's input; slower on large photos."),
) -> None:
    """Predict where photos were taken: the guess, how likely it is to be within 1 to 2,500 km, the credible
    region, top-k cells with places, and climate/geodata.

    Examples:
      pigeon predict model/ photo.jpg --top-k 5 --guess distance --probability-map map.geojson
      pigeon predict model/ n.jpg e.jpg s.jpg w.jpg --views 4 --json
      pigeon predict model/ --manifest data/manifest.parquet --split test -o predictions.csv --method knn
      pigeon predict geoclip photo.jpg --backbone clip:clip-vit-large-patch14/   (GeoCLIP's published model)
    """
    _check_answer_options(guess, credible)
    method = resolve_method_option(method, no_refine)
    if manifest is None and not images:
        raise InputError("nothing to predict; pass IMAGE paths or --manifest MANIFEST")
    if manifest is not None and images:
        raise InputError("pass either IMAGE paths or --manifest, not both")
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    if manifest is not None:
        if out is None:
            raise InputError("--manifest needs an output file: add -o predictions.csv")
        geo = _load(model, device, exact_decode, backbone, gallery, p_within)
        _predict_manifest(geo, manifest, split, embeddings, out, top_k, geo.resolve_method(method), strict,
                          {"guess": guess, "credible": credible, "p_within": p_within})
        return
    if views < 1 or len(images) % views:
        raise InputError(f"got {len(images)} image(s), not a multiple of --views {views}; pass {views} views "
                         "for every location")
    locations = [[str(p) for p in images[i:i + views]] for i in range(0, len(images), views)]
    if probability_map is not None and len(locations) != 1:
        raise InputError(f"--probability-map needs exactly one location, got {len(locations)}; "
                         "predict the images one location at a time")
    geo = _load(model, device, exact_decode, backbone, gallery, p_within)
    preds = geo.predict(locations, top_k=top_k, method=geo.resolve_method(method), guess=guess, credible=credible)
    if p_within is False:
        for p in preds:
            p.p_within = None
    if probability_map is not None:
        from pigeon._io import write_json

        write_json(probability_map, preds[0].to_geojson(region=True))
    if as_json:
        typer.echo(json.dumps([{"images": loc, **p.to_dict()} for loc, p in zip(locations, preds)], indent=2))
    else:
        _print_table(locations, preds, calibrated=not geo.calibration.identity)
    if probability_map is not None:
        typer.echo(f"probability map of {geo.n_cells} cells -> {probability_map}", err=True)


def _check_answer_options(guess: str | None, credible: float | None) -> None:
    """``--guess`` and ``--credible``, checked before the model is loaded."""
    from pigeon.posterior import check_credible, check_guess

    if guess is not None:
        check_guess(guess)
    if credible is not None:
        check_credible(credible)


def _load(model: Path, device: str | None, exact_decode: bool, backbone: str | None, gallery: Path | None,
          p_within: bool | None):
    """The model (with its backbone or gallery from elsewhere when given), whose backbone decodes every pixel when
    ``exact_decode``, checked to answer ``--p-within``."""
    from pigeon.images import DecodeConfig
    from pigeon.model import Geolocator

    geo = Geolocator.from_pretrained(model, device=device, backbone=backbone, gallery=gallery)
    if exact_decode:
        geo.backbone.decode = DecodeConfig(exact=True)
    geo.check_answer(p_within=p_within)
    return geo


def _predict_manifest(geo, manifest: Path, split: str | None, embeddings: Path | None, out: Path, top_k: int,
                      method: str, strict: bool, answer: dict) -> None:
    from pigeon._io import atomic_path
    from pigeon.embed import Embeddings
    from pigeon.model import predict_manifest_file

    failures_path = out.with_name(f"{out.stem}.failures.csv")
    failures_path.unlink(missing_ok=True)  # never leave a stale list from an earlier run beside new predictions
    emb = Embeddings.load(embeddings) if embeddings is not None else None
    run = predict_manifest_file(geo, manifest, out, split=split, embeddings=emb, top_k=top_k, method=method,
                                skip_errors=not strict, **answer)
    guess = answer["guess"] or geo.posterior_config.guess
    line = (f"predicted {run.n_predicted} of {run.n_rows} location(s) with method {method}, guess {guess}, top {top_k} "
            f"each -> {out}")
    if len(run.failures):
        with atomic_path(failures_path) as tmp:
            run.failures.to_csv(tmp, index=False)
        line += (f"; {len(run.failures)} unreadable image(s) left out ({run.n_rows - run.n_predicted} location(s) "
                 f"without a readable view) -> {failures_path}")
    typer.echo(line)


def _print_table(locations, preds, calibrated: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from pigeon.model._aux import aux_text

    console = Console()
    for loc, pred in zip(locations, preds):
        dec = pred.decimals
        table = Table(title=", ".join(Path(p).name for p in loc) + f"  (guess: {pred.guess}, {pred.method})",
                      title_justify="left")
        if pred.refined:
            table.title += f"  (head's guess {pred.cell_lat:.{dec}f}, {pred.cell_lon:.{dec}f})"
        for col in ("rank", "prob", "lat", "lon", "country", "region", "cell", "cell prob"):
            table.add_column(col, justify="left" if col in ("country", "region") else "right")
        for rank, c in enumerate(pred.top_k, start=1):
            table.add_row(str(rank), f"{c.prob:.3f}", f"{c.lat:.{dec}f}", f"{c.lon:.{dec}f}", c.country or "-",
                          c.admin1 or "-", str(c.cell), f"{c.cell_prob:.3f}")
        console.print(table)
        console.print("  " + _posterior_text(pred, calibrated))
        if pred.aux:
            console.print("  " + "; ".join(aux_text(k, v) for k, v in pred.aux.items()))


def _posterior_text(pred, calibrated: bool) -> str:
    """P(within r), the expected error, the credible region and the unseen-ground score, as one line."""
    parts = []
    if pred.p_within is not None:
        parts.append("P(within " + ", ".join(f"{r:,} km {100 * p:.0f}%" for r, p in pred.p_within.items()) + ")")
    parts.append(f"expected error {pred.expected_km:,.0f} km")
    if pred.credible is not None:
        c = pred.credible
        parts.append(f"{100 * c.q:.0f}% credible region: {len(c.cells)} cell(s), {c.area_km2:,.0f} km²")
    if pred.unseen is not None:
        parts.append(f"unseen ground {pred.unseen:.2f}" + (" (unlike anything in training)" if pred.unseen >= 0.99
                                                          else ""))
    if not calibrated:
        parts.append("uncalibrated: run 'pigeon calibrate'")
    return "; ".join(parts)
