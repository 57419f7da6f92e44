"""The end-to-end demo: every stage of the pipeline on the embedded Blue Marble dataset, offline, on a CPU.

``run_demo(out_dir)`` writes::

    out_dir/
      demo.json        the demo's arguments and versions (a rerun with the same arguments reuses finished stages)
      data/            Blue Marble views (JPEG) and manifest.parquet, enriched with the auxiliary geodata
      cells/           semantic geocells built on the training split
      pretrained/      with --pretrain: the backbone after contrastive pretraining on the training split's captions
      embeddings/      EfficientNet-Lite0 embeddings of every view (the offline default backbone, or pretrained/)
      model/           the trained Geolocator (pigeon.Geolocator.from_pretrained("out_dir/model"))
      report/          test-split evaluation of the model's default placing method, refine (metrics, error CDF,
                       error map, breakdown by distance to the nearest training location, calibration), cells.png,
                       one sub-folder per other placing method of the registry (cell/: the head alone, at cell
                       centroids; knn/: the nearest training image), baseline/ (always guess the training set's
                       spherical mean), guess-distance/ and guess-score/ (the default method's posterior guesses
                       for those objectives) and comparison.md (random split and region held out side by side)
      region/          the same recipe on a region split of the same locations (see :func:`run_region_holdout`):
                       manifest.parquet, cells/, model/, report/ with the same sub-reports
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeon._config import JsonConfig
from pigeon._io import atomic_path, provenance, read_json, write_json
from pigeon.errors import InputError
from pigeon.model._config import TrainConfig

if TYPE_CHECKING:
    import pandas as pd

STAGES = ("data", "cells", "pretrained", "embeddings", "model", "report", "region")
#: The guess objectives the demo compares (on the default method) -> report sub-folder ("" = the method's report).
GUESS_REPORTS = {"mode": "", "distance": "guess-distance", "score": "guess-score"}
#: The region-held-out split: 50 regions of the demo's locations (k-means), whole regions go to val or test, and
#: training rows closer than 905 km to a val/test row (view centres included) are left out. Two 640 km views
#: overlap only when their centres are closer than 640 x sqrt(2) = 905 km, so no training view shows test ground.
REGION_SPLIT = {"by": "region", "n_regions": 50, "buffer_km": 905.0}
#: The placing methods whose artefacts the demo builds (the head's ``cell`` needs none; ``knn`` uses the refiner).
DEMO_METHODS = ("refine", "geoclip")


@dataclass(frozen=True)
class DemoConfig(JsonConfig):
    """Arguments of the demo; the defaults take a few minutes on 2 CPU cores."""

    n: int = 1000          # Blue Marble locations (80 % train, 10 % val, 10 % test)
    views: int = 4         # views per location, averaged like the paper's 4-image panoramas
    seed: int = 0          # data, cells and training seed
    min_size: int = 8      # semantic geocells: min / max training locations per cell
    max_size: int = 25
    epochs: int = TrainConfig.epochs  # maximum training epochs (early stopping on the validation median km)
    pretrain: bool = False  # contrastive pretraining of the backbone's last block on captions (one epoch) first

    def validate(self) -> DemoConfig:
        """Check the arguments before any work starts; raise :class:`InputError` naming the option to fix."""
        from pigeon.data.bluemarble import VIEW_COUNTS

        if self.views not in VIEW_COUNTS:
            raise InputError(f"--views must be one of {', '.join(map(str, VIEW_COUNTS))}, got {self.views}")
        if not 1 <= self.min_size <= self.max_size:
            raise InputError(f"need 1 <= --min-size <= --max-size, got {self.min_size} and {self.max_size}")
        if int(0.8 * self.n) < self.min_size:
            raise InputError(f"--n {self.n} gives about {int(0.8 * self.n)} training locations, fewer than "
                             f"--min-size {self.min_size}; raise --n or lower --min-size")
        TrainConfig(epochs=self.epochs, seed=self.seed).validate()
        return self


def demo_dataset(root: str | os.PathLike, n: int, views: int, seed: int) -> pd.DataFrame:
    """The Blue Marble dataset enriched with the auxiliary geodata, made once in ``root`` and then reused."""
    from pigeon.data import read_manifest, write_manifest
    from pigeon.data.bluemarble import make_bluemarble_dataset
    from pigeon.geography import enrich

    root = Path(root)
    enriched = root / "manifest.parquet"
    if not (root / "enriched.json").is_file():
        df = make_bluemarble_dataset(root, n=n, views=views, seed=seed, overwrite=True)
        write_manifest(enrich(df), enriched)
        write_json(root / "enriched.json", provenance("enrichment", {"manifest": enriched.name}))
    return read_manifest(enriched)


def demo_embeddings(df: pd.DataFrame, root: str | os.PathLike, backbone: str | None = None):
    """Embeddings of every view with ``backbone`` (default: the offline default); an interrupted run resumes."""
    from pigeon.backbones import DEFAULT_BACKBONE
    from pigeon.embed import Embeddings, embed_manifest

    meta = Path(root) / "meta.json"
    if meta.is_file() and read_json(meta).get("complete"):
        return Embeddings.load(root)
    return embed_manifest(df, backbone or DEFAULT_BACKBONE, root)  # resumes an interrupted store


def demo_pretrained(train_df: pd.DataFrame, root: Path, seed: int) -> str:
    """The offline backbone after one epoch of contrastive pretraining of its last block (made once)."""
    from pigeon.backbones import DEFAULT_BACKBONE, PRETRAINED_MARKER
    from pigeon.pretrain import PretrainConfig, pretrain

    if not (root / PRETRAINED_MARKER).is_file():
        config = PretrainConfig(epochs=1, lr=1e-4, batch_size=min(32, len(train_df)), grad_accum=1, warmup_ratio=0.1,
                                layers="last", seed=seed)
        pretrain(train_df, DEFAULT_BACKBONE, root, config, resume=(root / "checkpoint").is_dir())
    return str(root)


def run_demo(out_dir: str | os.PathLike, config: DemoConfig | None = None, *, overwrite: bool = False,
             log=print) -> dict[str, Any]:
    """Run every stage on the Blue Marble dataset and evaluate on its test split.

    Args:
        out_dir: the demo folder (see the module docstring for its layout).
        config: a :class:`DemoConfig`.
        overwrite: remake every stage; otherwise a folder made with the same config is reused stage by stage.
        log: called with one line per stage.

    Returns:
        ``{"model", "cell", "refine", "knn", ..., "baseline": metrics, "n_cells": int, "out_dir": str,
        "region": ...}``: the random split's model (its default method), each placing method of the model, and
        the spherical mean (metrics as in :func:`pigeon.evaluate.compute_metrics`), and the same for the
        region-held-out run (:func:`run_region_holdout`).
    """
    from pigeon.cells import plot_cells
    from pigeon.data import select_split, training_rows

    config = (config or DemoConfig()).validate()
    out = Path(out_dir)
    _claim(out, config, overwrite)
    paths = {stage: out / stage for stage in STAGES}

    log(f"[1/5] data: {config.n} Blue Marble locations x {config.views} views, enriched -> {paths['data']}")
    df = demo_dataset(paths["data"], config.n, config.views, config.seed)
    train_df, test_df = training_rows(df), select_split(df, "test")

    log(f"[2/5] geocells: semantic, {config.min_size}-{config.max_size} training locations per cell -> "
        f"{paths['cells']}")
    cells = demo_cells(train_df, paths["cells"], config)

    backbone = None
    if config.pretrain:
        log(f"[+] pretraining: the backbone's last block on synthetic captions of the training views -> "
            f"{paths['pretrained']}")
        backbone = demo_pretrained(train_df, paths["pretrained"], config.seed)
    log(f"[3/5] embeddings: {df['image'].map(len).sum()} views -> {paths['embeddings']}")
    emb = demo_embeddings(df, paths["embeddings"], backbone)

    log(f"[4/5] training: geocell head with haversine label smoothing + auxiliary heads, refiner, geoclip -> "
        f"{paths['model']}")
    geo = demo_model(df, lambda: cells, emb, paths["model"], config)

    log(f"[5/5] evaluation on {len(test_df)} test locations -> {paths['report']}")
    runs = evaluate_methods(geo, train_df, test_df, emb, paths["report"], "random split",
                            {"demo": asdict(config)})
    reports = method_reports(geo)
    guesses = evaluate_guesses(geo, train_df, test_df, emb, paths["report"], "random split",
                               {"demo": asdict(config)}, runs)
    plot_cells(cells, paths["report"] / "cells.png")

    region = run_region_holdout(df, emb, paths["region"], config, log=log)
    runs.update(region["runs"])
    guesses.update(region["guesses"])
    log(_record_comparison(geo, runs, guesses, reports, region["split"], paths))
    return {**_by_role(runs, "random split", reports), "n_cells": len(cells), "out_dir": str(out), "region": region,
            "guesses": guesses}


def demo_cells(train_df: pd.DataFrame, folder: Path, config: DemoConfig):
    """The demo's semantic geocells of the training rows, built once in ``folder`` and then reused."""
    from pigeon.cells import GeoCells

    if (folder / "meta.json").is_file():
        return GeoCells.load(folder)
    cells = GeoCells.build(train_df["lat"], train_df["lon"], method="semantic", min_size=config.min_size,
                           max_size=config.max_size, seed=config.seed)
    cells.save(folder)
    return cells


def demo_model(df: pd.DataFrame, cells, emb, folder: Path, config: DemoConfig):
    """The demo's geolocator (the street-view recipe with the demo's epochs and seed, and the artefacts of
    :data:`DEMO_METHODS`), trained once in ``folder``;
    ``cells()`` gives its geocells when it has to be trained."""
    from pigeon.model import Geolocator, train

    if (folder / "config.json").is_file():
        return Geolocator.from_pretrained(folder)
    return train(df, cells(), emb, folder, TrainConfig(epochs=config.epochs, seed=config.seed),
                 methods=DEMO_METHODS, overwrite=True)


def _record_comparison(geo, runs: dict[str, dict[str, Any]], guesses: dict[str, dict[str, Any]],
                       reports: dict[str, tuple[str, str]], region_split: dict[str, Any], paths: dict[str, Path]) -> str:
    """Every method's and every guess objective's metrics on both splits in the model card and in
    ``report/comparison.md``; the tables."""
    from pigeon.evaluate import metrics_table, to_markdown

    geo.record_evaluation(_evaluation_entries(runs, guesses, reports), paths["model"])
    table = to_markdown(metrics_table(runs))
    by_guess = guess_table(guesses)
    with atomic_path(paths["report"] / "comparison.md") as tmp:
        tmp.write_text(table + _REGION_NOTE.format(**region_split) + _GUESS_NOTE + by_guess)
    return table + "\n" + by_guess


_GUESS_NOTE = (
    "\n**By objective** (`--guess`): the placing method's own answer (mode), the point that minimises the expected "
    "distance, and the one that maximises the expected GeoGuessr score under the same calibrated posterior; with "
    "the calibration of its P(within r) and its 90 % credible regions.\n\n"
)
_REGION_NOTE = (
    "\n**Random split**: test locations drawn at random, so most have training views of the same ground. "
    "**Region held out**: the same locations split by whole regions ({counts[train]} train, {counts[val]} val, "
    "{counts[test]} test), every training view centre at least {buffer_km:g} km from every val/test view centre "
    "({counts[excluded]} training locations left out for that), so no training view shows test ground; same model "
    "recipe and embeddings. See by_train_distance.csv in each report for the error by distance to training.\n"
)


def run_region_holdout(df: pd.DataFrame, emb, out_dir: str | os.PathLike, config: DemoConfig, *,
                       log=print) -> dict[str, Any]:
    """The demo's recipe trained and evaluated on a region split of the same locations (see :data:`REGION_SPLIT`).

    Reuses the embeddings; builds its own cells on its training rows. Writes ``out_dir/manifest.parquet`` (the
    split) and ``out_dir/{cells,model,report}``.

    Returns:
        ``{"model", <each placing method>, "baseline": metrics, "runs": {row name: metrics}, "guesses":
        {"<objective>, region held out": metrics}, "split": the split metadata (counts, buffer)}``.
    """
    from pigeon.data import select_split, training_rows, write_manifest
    from pigeon.data.split import split_manifest

    out = Path(out_dir)
    split_df = split_manifest(df, **REGION_SPLIT, seed=config.seed)
    info = split_df.attrs["meta"]["split"]
    write_manifest(split_df, out / "manifest.parquet")
    train_df, test_df = training_rows(split_df), select_split(split_df, "test")
    log(f"[region] the same recipe on a region split: {len(train_df)} train / {len(test_df)} test locations, "
        f">= {info['buffer_km']:g} km apart -> {out}")
    geo = demo_model(split_df, lambda: demo_cells(train_df, out / "cells", config), emb, out / "model", config)
    runs = evaluate_methods(geo, train_df, test_df, emb, out / "report", "region held out",
                            {"demo": asdict(config), "split": info})
    guesses = evaluate_guesses(geo, train_df, test_df, emb, out / "report", "region held out",
                               {"demo": asdict(config), "split": info}, runs)
    return {**_by_role(runs, "region held out", method_reports(geo)), "runs": runs, "guesses": guesses,
            "split": info}


def _evaluation_entries(runs: dict[str, dict[str, Any]], guesses: dict[str, dict[str, Any]],
                        reports: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """What the model card records: every placing method and every guess objective on both splits."""
    notes = {"random split": "random split: test locations share ground with training ones (views overlap), so "
                             "retrieval finds near neighbours",
             "region held out": "region held out: no training view shows test ground"}
    default = next(iter(reports))
    return ([{"split": f"demo test ({split})", "method": method, "metrics": runs[f"{name}, {split}"],
              "note": notes[split]} for split in notes for method, (name, _) in reports.items()]
            + [{"split": f"demo test ({split})", "method": f"{default}, guess {guess}",
                "metrics": guesses[f"{guess}, {split}"], "note": notes[split]}
               for split in notes for guess in GUESS_REPORTS if guess != "mode"])


def method_reports(geo) -> dict[str, tuple[str, str]]:
    """How the demo reports each placing method of ``geo`` (from the placer registry): method -> (row name in the
    comparison, report sub-folder; "" = the report itself, for the model's default method, which comes first)."""
    from pigeon.model.placers import METHODS

    default = geo.resolve_method(None)
    names = [default] + [m for m in geo.methods if m != default]
    return {m: (METHODS[m].title, "" if m == default else m) for m in names}


def evaluate_methods(geo, train_df: pd.DataFrame, test_df: pd.DataFrame, emb, report: Path, split: str,
                     config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Reports of every placing method of ``geo`` (:func:`method_reports`) and of the spherical-mean baseline on
    one split.

    Returns:
        ``{"<row name>, <split>": metrics}``.
    """
    from pigeon.evaluate import mean_baseline, write_report
    from pigeon.model import predict_manifest

    runs: dict[str, dict[str, Any]] = {}
    for method, (name, folder) in method_reports(geo).items():
        label = f"{name}, {split}"
        runs[label] = write_report(predict_manifest(geo, test_df, emb, method=method, guess="mode"), test_df,
                                   report / folder if folder else report,
                                   config={**config, "method": method, "guess": "mode"}, train_df=train_df,
                                   name=label, cells=None if folder else geo.cells)
    label = f"spherical-mean baseline, {split}"
    runs[label] = write_report(mean_baseline(train_df, test_df["id"]), test_df, report / "baseline",
                               config={**config, "baseline": "spherical mean of the training locations"},
                               name=label)
    return runs


def evaluate_guesses(geo, train_df: pd.DataFrame, test_df: pd.DataFrame, emb, report: Path, split: str,
                     config: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Reports of the default placing method's guess for each objective of :data:`GUESS_REPORTS` (``mode`` is that
    method's report of :func:`evaluate_methods`, taken from ``runs``).

    Returns:
        ``{"<objective>, <split>": metrics}``.
    """
    from pigeon.evaluate import write_report
    from pigeon.model import predict_manifest

    method = geo.resolve_method(None)
    out = {f"mode, {split}": runs[f"{method_reports(geo)[method][0]}, {split}"]}
    for guess, folder in GUESS_REPORTS.items():
        if folder:
            label = f"{guess}, {split}"
            out[label] = write_report(predict_manifest(geo, test_df, emb, method=method, guess=guess),
                                      test_df, report / folder, config={**config, "method": method, "guess": guess},
                                      train_df=train_df, name=f"guess {label}", cells=geo.cells)
    return out


def guess_table(runs: dict[str, dict[str, Any]]) -> str:
    """The metrics by objective as Markdown, with the calibration rows of their reports."""
    import pandas as pd

    from pigeon.evaluate import metrics_table, to_markdown
    from pigeon.geo import RADII_KM

    table = metrics_table(runs)
    extra = {f"ECE of P(within {r:,} km)": [_fmt(m.get("calibration", {}).get(f"ece_{r}km"), "{:.3f}")
                                            for m in runs.values()] for r in RADII_KM[2:]}
    extra["90 % credible region: coverage"] = [_fmt(m.get("calibration", {}).get("credible_coverage"), "{:.0%}")
                                               for m in runs.values()]
    extra["90 % credible region: mean area (km²)"] = [
        _fmt(m.get("calibration", {}).get("credible_area_km2_mean"), "{:,.0f}") for m in runs.values()]
    return to_markdown(pd.concat([table, pd.DataFrame(extra, index=table.columns).T]))


def _fmt(value, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def _by_role(runs: dict[str, dict[str, Any]], split: str,
             reports: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """``{"model" (the default method), <each method>, "baseline": metrics}`` of one split's runs."""
    by_method = {method: runs[f"{name}, {split}"] for method, (name, _) in reports.items()}
    return {"model": by_method[next(iter(reports))], **by_method,
            "baseline": runs[f"spherical-mean baseline, {split}"]}


def _claim(out: Path, config: DemoConfig, overwrite: bool) -> None:
    """Make ``out`` the demo folder of ``config``: reuse it, clear it (overwrite) or refuse."""
    marker = out / "demo.json"
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; pass a folder for the demo")
    if marker.is_file():
        previous = read_json(marker).get("config")
        if previous != asdict(config) and not overwrite:
            raise InputError(f"{out} holds a demo made with other arguments ({previous}); pass --overwrite "
                             "to remake it or choose another folder")
        if overwrite:
            for stage in STAGES:
                shutil.rmtree(out / stage, ignore_errors=True)
    elif out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out} is not empty and holds no demo; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(marker, provenance("demo", asdict(config)))
