"""The end-to-end demo: every stage of the pipeline on the embedded Blue Marble dataset, offline, on a CPU.

``run_demo(out_dir)`` writes::

    out_dir/
      demo.json        the demo's arguments and versions (a rerun with the same arguments reuses finished stages)
      data/            Blue Marble views (JPEG) and manifest.parquet, enriched with the auxiliary geodata
      cells/           semantic geocells built on the training split
      pretrained/      with --pretrain: the backbone after contrastive pretraining on the training split's captions
      embeddings/      EfficientNet-Lite0 embeddings of every view (the offline default backbone, or pretrained/)
      model/           the trained Geolocator (pigeon.Geolocator.from_pretrained("out_dir/model"))
      report/          test-split evaluation of the refined model (metrics, error CDF, error map), cells.png,
                       head/ (the head alone: cell centroids), knn/ (the nearest training image), baseline/
                       (always guess the training set's spherical mean) and comparison.md
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pigeon._io import atomic_path, provenance, read_json, write_json
from pigeon.errors import InputError

STAGES = ("data", "cells", "pretrained", "embeddings", "model", "report")
#: How the demo places its guesses -> (row name in the comparison, report sub-folder; "" = the report itself).
METHOD_REPORTS = {
    "refine": ("pigeon (refined)", ""),
    "cell": ("pigeon head only (cell centroid)", "head"),
    "knn": ("nearest training image (kNN)", "knn"),
}


@dataclass(frozen=True)
class DemoConfig:
    """Arguments of the demo; the defaults take a few minutes on 2 CPU cores."""

    n: int = 1000          # Blue Marble locations (80 % train, 10 % val, 10 % test)
    views: int = 4         # views per location, averaged like the paper's 4-image panoramas
    seed: int = 0          # data, cells and training seed
    min_size: int = 8      # semantic geocells: min / max training locations per cell
    max_size: int = 25
    epochs: int = 40       # maximum training epochs (early stopping on the validation median km)
    pretrain: bool = False  # contrastive pretraining of the backbone's last block on captions (one epoch) first

    def validate(self) -> DemoConfig:
        """Check the arguments before any work starts; raise :class:`InputError` naming the option to fix."""
        from pigeon.data.bluemarble import VIEW_COUNTS
        from pigeon.model import TrainConfig

        if self.views not in VIEW_COUNTS:
            raise InputError(f"--views must be one of {', '.join(map(str, VIEW_COUNTS))}, got {self.views}")
        if not 1 <= self.min_size <= self.max_size:
            raise InputError(f"need 1 <= --min-size <= --max-size, got {self.min_size} and {self.max_size}")
        if int(0.8 * self.n) < self.min_size:
            raise InputError(f"--n {self.n} gives about {int(0.8 * self.n)} training locations, fewer than "
                             f"--min-size {self.min_size}; raise --n or lower --min-size")
        TrainConfig(epochs=self.epochs, seed=self.seed).validate()
        return self


def demo_dataset(root: str | os.PathLike, n: int = 1000, views: int = 4, seed: int = 0) -> pd.DataFrame:
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

    if (Path(root) / "meta.json").is_file():
        return Embeddings.load(root)
    return embed_manifest(df, backbone or DEFAULT_BACKBONE, root)


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
        ``{"model": metrics, "head": metrics, "knn": metrics, "baseline": metrics, "n_cells": int,
        "out_dir": str}`` (the refined model, its head alone, the nearest-neighbour baseline and the spherical
        mean); metrics as in :func:`pigeon.evaluate.compute_metrics`.
    """
    from pigeon.cells import GeoCells, plot_cells
    from pigeon.evaluate import mean_baseline, metrics_table, to_markdown, write_report
    from pigeon.model import Geolocator, TrainConfig, predict_manifest, train

    config = (config or DemoConfig()).validate()
    out = Path(out_dir)
    _claim(out, config, overwrite)
    paths = {stage: out / stage for stage in STAGES}

    log(f"[1/5] data: {config.n} Blue Marble locations x {config.views} views, enriched -> {paths['data']}")
    df = demo_dataset(paths["data"], config.n, config.views, config.seed)
    train_df, test_df = df[df["split"] == "train"], df[df["split"] == "test"]

    log(f"[2/5] geocells: semantic, {config.min_size}-{config.max_size} training locations per cell -> "
        f"{paths['cells']}")
    if (paths["cells"] / "meta.json").is_file():
        cells = GeoCells.load(paths["cells"])
    else:
        cells = GeoCells.build(train_df["lat"], train_df["lon"], method="semantic", min_size=config.min_size,
                               max_size=config.max_size, seed=config.seed)
        cells.save(paths["cells"])

    backbone = None
    if config.pretrain:
        log(f"[+] pretraining: the backbone's last block on synthetic captions of the training views -> "
            f"{paths['pretrained']}")
        backbone = demo_pretrained(train_df, paths["pretrained"], config.seed)
    log(f"[3/5] embeddings: {df['image'].map(len).sum()} views -> {paths['embeddings']}")
    emb = demo_embeddings(df, paths["embeddings"], backbone)

    log(f"[4/5] training: geocell head with haversine label smoothing + auxiliary heads, refiner -> {paths['model']}")
    if (paths["model"] / "config.json").is_file():
        geo = Geolocator.from_pretrained(paths["model"])
    else:
        geo = train(df, cells, emb, paths["model"], TrainConfig(epochs=config.epochs, seed=config.seed),
                    overwrite=True)

    log(f"[5/5] evaluation on {len(test_df)} test locations -> {paths['report']}")
    runs: dict[str, dict[str, Any]] = {}
    for method, (name, folder) in METHOD_REPORTS.items():
        predictions = predict_manifest(geo, test_df, emb, top_k=5, method=method)
        runs[name] = write_report(predictions, test_df, paths["report"] / folder if folder else paths["report"],
                                  config={"demo": asdict(config), "method": method})
    runs["spherical-mean baseline"] = write_report(
        mean_baseline(train_df, test_df["id"]), test_df, paths["report"] / "baseline",
        config={"baseline": "spherical mean of the training locations"})
    note = ("random split: test locations share ground with training ones (views overlap), so retrieval finds "
            "near neighbours; see a region-held-out split for generalisation")
    geo.record_evaluation([{"split": "demo test (random)", "method": method, "metrics": runs[name], "note": note}
                           for method, (name, _) in METHOD_REPORTS.items()], paths["model"])
    plot_cells(cells, paths["report"] / "cells.png")
    table = to_markdown(metrics_table(runs))
    with atomic_path(paths["report"] / "comparison.md") as tmp:
        tmp.write_text(table)
    log(table)
    names = [name for name, _ in METHOD_REPORTS.values()]
    return {"model": runs[names[0]], "head": runs[names[1]], "knn": runs[names[2]],
            "baseline": runs["spherical-mean baseline"], "n_cells": len(cells), "out_dir": str(out)}


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
