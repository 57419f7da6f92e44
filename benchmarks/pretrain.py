"""Contrastive pretraining and auxiliary losses on the embedded Blue Marble dataset.

Usage::

    python benchmarks/pretrain.py [--n 400] [--views 1] [--epochs 2] [--seeds 0 1 2] [--workdir /tmp/pigeon-pretrain]
    python benchmarks/pretrain.py --only finetune [--finetune-seeds 0 1 2]

On one Blue Marble dataset (enriched; semantic cells on its training split), with the offline towers
(EfficientNet-Lite0 + all-MiniLM-L6-v2, ``layers="last"``: the last block of each tower and the projections train):

1. **Downstream geolocation**: the same head training (same split, cells and seeds) on embeddings of the plain
   backbone, of the backbone pretrained with the auxiliary losses and of the one pretrained without them.
2. **Auxiliary losses under fine-tuning**: the plain-backbone model fine-tuned (last block + heads) with the
   auxiliary losses at the paper's weights, at 1/8 of them, and without them, same data and seeds, evaluated from the
   test images (``--only finetune`` runs this part alone).
3. **Image -> caption retrieval** on the test views: accuracy of picking the true country among
   "A Street View photo in {country}." and the true Köppen class among "This location has a {climate} climate."
   before pretraining (fresh towers, random projections) and after.
4. **Throughput**: one pretraining step (images + captions through both towers, InfoNCE + auxiliary losses,
   backward, AdamW) against the bare forward + backward of the backbone on the same images (median of repeats,
   interleaved, one run).

Prints Markdown and writes ``WORKDIR/pretrain.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

SHOWN = ("median_km", "acc_200km", "acc_750km", "acc_2500km", "country_acc", "geoscore_mean")


def prepare(workdir: Path, n: int, views: int, min_size: int, max_size: int):
    """The enriched dataset, semantic cells on its training split and plain-backbone embeddings (cached)."""
    from pigeon.backbones import DEFAULT_BACKBONE
    from pigeon.cells import GeoCells
    from pigeon.demo import demo_dataset

    df = demo_dataset(workdir / "data", n=n, views=views, seed=0)
    train = df[df["split"] == "train"]
    if (workdir / "cells" / "meta.json").is_file():
        cells = GeoCells.load(workdir / "cells")
    else:
        cells = GeoCells.build(train["lat"], train["lon"], method="semantic", min_size=min_size, max_size=max_size)
        cells.save(workdir / "cells")
    emb = _embed(df, DEFAULT_BACKBONE, workdir / "emb_plain")
    return df, cells, emb


def _embed(df, backbone, root: Path):
    from pigeon.embed import Embeddings, embed_manifest

    if (root / "meta.json").is_file():
        return Embeddings.load(root)
    return embed_manifest(df, backbone, root, num_workers=0)


def pretrained(df, workdir: Path, aux: bool, args) -> Path:
    from pigeon.pretrain import PretrainConfig, pretrain

    out = workdir / f"pretrained_{'aux' if aux else 'noaux'}"
    if (out / "backbone.json").is_file():
        return out
    config = PretrainConfig(epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, batch_size=args.batch_size,
                            grad_accum=1, warmup_ratio=0.1, layers="last", aux=aux, seed=0)
    t0 = time.perf_counter()
    pretrain(df, "efficientnet:lite0", out, config, overwrite=True)
    (out / "bench_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}")
    return out


def head_metrics(df, cells, emb, seeds, workdir: Path, tag: str) -> list[dict]:
    from pigeon.evaluate import compute_metrics
    from pigeon.model import TrainConfig, predict_manifest, train

    test = df[df["split"] == "test"]
    out = []
    for seed in seeds:
        geo = train(df, cells, emb, workdir / "models" / f"{tag}_seed{seed}", TrainConfig(seed=seed), overwrite=True)
        out.append(compute_metrics(predict_manifest(geo, test, emb, top_k=1), test))
    return out


#: Fine-tuning variants: (auxiliary losses on, scale of the paper's auxiliary weights 8/2/1).
FINETUNE_VARIANTS = {
    "with aux losses (the paper's weights 8/2/1)": (True, 1.0),
    "with aux losses at 1/8 of the paper's weights": (True, 0.125),
    "without aux losses": (False, 1.0),
}


def finetuned_metrics(df, cells, emb, workdir: Path, aux: bool, epochs: int, seed: int = 0,
                      weight_scale: float = 1.0) -> dict:
    """Fine-tune the plain-backbone model of ``seed`` (trained here if missing) and evaluate it from the images.

    The base model is trained with the auxiliary weights scaled by ``weight_scale``; its linear geocell head does not
    depend on them (the auxiliary heads share no parameters with it), so every variant starts from the same cells.
    """
    from pigeon.evaluate import compute_metrics
    from pigeon.model import Geolocator, TrainConfig, finetune, predict_manifest, train

    tag = f"plain_seed{seed}" + ("" if weight_scale == 1 else f"_aux{weight_scale:g}")
    base = workdir / "models" / tag
    if not (base / "config.json").is_file():
        default = TrainConfig()
        train(df, cells, emb, base, TrainConfig(
            seed=seed, regression_weight=default.regression_weight * weight_scale,
            climate_weight=default.climate_weight * weight_scale, month_weight=default.month_weight * weight_scale),
            overwrite=True, refine=False)
    out = workdir / "models" / f"finetuned_{tag}_{'aux' if aux else 'noaux'}"
    t0 = time.perf_counter()
    geo = finetune(Geolocator.from_pretrained(base), df, out, epochs=epochs, lr=1e-4, batch_size=16, seed=seed, aux=aux)
    seconds = time.perf_counter() - t0
    test = df[df["split"] == "test"]
    return {**compute_metrics(predict_manifest(geo, test, top_k=1, method="cell"), test), "finetune_seconds": seconds}


def finetune_ablation(df, cells, emb, workdir: Path, epochs: int, seeds: list[int]) -> dict[str, list[dict]]:
    """Every fine-tuning variant for every seed (same data, cells, base heads and seeds)."""
    return {name: [finetuned_metrics(df, cells, emb, workdir, aux, epochs, seed, scale) for seed in seeds]
            for name, (aux, scale) in FINETUNE_VARIANTS.items()}


def retrieval(towers, df) -> dict[str, float]:
    """Test-view accuracy of choosing the true country / Köppen class among one caption per class."""
    from pigeon.data import image_views
    from pigeon.geography import KOPPEN_NAMES, country_phrase

    test = df[df["split"] == "test"]
    paths = [v for views in image_views(test) for v in views]
    rows = test.loc[test.index.repeat([len(v) for v in image_views(test)])]
    pixels = torch.stack([towers.backbone.preprocess(p) for p in paths])
    out = {}
    for field, column, template in (
        ("country", "country_name", lambda c: f"A Street View photo in {country_phrase(c)}."),
        ("climate", "koppen", lambda c: f"This location has {_article(KOPPEN_NAMES[c])} climate."),
    ):
        classes = sorted(df[column].dropna().unique())
        truth = rows[column].to_numpy()
        known = pd.notna(truth)
        with torch.no_grad():
            sims = torch.cat([towers.similarity(pixels[i:i + 64], [template(c) for c in classes])
                              for i in range(0, len(pixels), 64)])
        guess = np.asarray(classes, dtype=object)[sims.argmax(1).numpy()]
        counts = pd.Series(truth[known]).value_counts()
        out[field] = float((guess[known] == truth[known]).mean())
        out[f"{field}_classes"] = len(classes)
        out[f"{field}_majority"] = float(counts.iloc[0] / known.sum())
    return out


def _article(words: str) -> str:
    return f"{'an' if words[0].lower() in 'aeiou' else 'a'} {words}"


def throughput(df, batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds per pretraining step and per bare backbone forward + backward, same images, interleaved."""
    from pigeon.data import image_views
    from pigeon.geography import captions
    from pigeon.model._aux import aux_targets, aux_tensors, Standardiser
    from pigeon.pretrain import AuxHeads, ContrastiveModel, PretrainConfig, load_towers

    torch.manual_seed(0)
    train = df[df["split"] == "train"].iloc[:batch_size]
    towers = load_towers("efficientnet:lite0")
    pre, new = towers.trainable("last")
    aux = aux_targets(train)
    targets = aux_tensors(aux, Standardiser.fit(aux.regression_columns, aux.regression))
    heads = AuxHeads(1280, len(aux.climate_classes), 0, len(aux.regression_columns))
    model = ContrastiveModel(towers, heads, PretrainConfig().aux_weights).train()
    opt = torch.optim.AdamW(pre + new + list(heads.parameters()), lr=1e-5)
    pixels = torch.stack([towers.backbone.preprocess(v[0]) for v in image_views(train)])
    batch = {"pixels": pixels, "texts": list(captions(train, seed=0)), **targets}
    bare_opt = torch.optim.AdamW(pre, lr=1e-5)
    times: dict[str, list[float]] = {"step": [], "bare": []}
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        loss, _, _ = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        t1 = time.perf_counter()
        towers.backbone(towers.backbone.prepare(pixels)).square().mean().backward()
        bare_opt.step()
        bare_opt.zero_grad()
        t2 = time.perf_counter()
        if r:  # the first round warms up
            times["step"].append(t1 - t0)
            times["bare"].append(t2 - t1)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="pretraining epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4, help="pretrained layers' peak learning rate")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="projections' and auxiliary heads' learning rate")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--finetune-seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds")
    parser.add_argument("--only", choices=("all", "finetune"), default="all",
                        help="finetune: only the fine-tuning ablation (writes WORKDIR/finetune.json)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="head-training seeds")
    parser.add_argument("--min-size", type=int, default=6)
    parser.add_argument("--max-size", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pigeon-pretrain"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is far faster on a busy machine)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    from pigeon.pretrain import load_towers

    df, cells, plain = prepare(args.workdir, args.n, args.views, args.min_size, args.max_size)
    finetune_rows = finetune_ablation(df, cells, plain, args.workdir, args.finetune_epochs, args.finetune_seeds)
    if args.only == "finetune":
        (args.workdir / "finetune.json").write_text(json.dumps(finetune_rows, indent=2, default=float))
        _print_finetune(finetune_rows, args)
        return
    runs: dict[str, dict] = {}
    runs["plain backbone"] = {"metrics": head_metrics(df, cells, plain, args.seeds, args.workdir, "plain")}
    towers_before = load_towers("efficientnet:lite0")
    retrieval_rows = {"before pretraining (fresh towers)": retrieval(towers_before, df)}
    del towers_before
    for aux in (True, False):
        name = f"pretrained, {'with' if aux else 'without'} aux losses"
        folder = pretrained(df, args.workdir, aux, args)
        emb = _embed(df, str(folder), args.workdir / f"emb_{folder.name}")
        runs[name] = {"metrics": head_metrics(df, cells, emb, args.seeds, args.workdir, folder.name),
                      "pretrain_seconds": float((folder / "bench_seconds.txt").read_text()),
                      "history": [json.loads(l) for l in (folder / "pretrain_log.jsonl").read_text().splitlines()]}
        retrieval_rows[f"after, {'with' if aux else 'without'} aux losses"] = retrieval(load_towers(str(folder)), df)
    speed = throughput(df, args.batch_size, args.repeats)
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "finetune": finetune_rows,
              "retrieval": retrieval_rows, "throughput": speed,
              "n_train": int((df["split"] == "train").sum()), "n_test": int((df["split"] == "test").sum()),
              "n_cells": len(cells), "threads": torch.get_num_threads()}
    (args.workdir / "pretrain.json").write_text(json.dumps(result, indent=2, default=float))
    _print(result, args)


def _print(result: dict, args) -> None:
    print(f"Blue Marble, {args.n} locations x {args.views} views, {result['n_train']} train / {result['n_test']} test "
          f"locations, {result['n_cells']} semantic cells; pretraining {args.epochs} epoch(s), batch {args.batch_size}, "
          f"lr {args.lr} / {args.head_lr}, layers=last; head seeds {args.seeds}\n")
    print("| embeddings | " + " | ".join(SHOWN) + " | pretrain s |")
    print("|---|" + "---|" * (len(SHOWN) + 1))
    for name, run in result["runs"].items():
        cells = " | ".join(_mean_std([m[k] for m in run["metrics"]], k) for k in SHOWN)
        print(f"| {name} | {cells} | {run.get('pretrain_seconds', 0):.0f} |")
    _print_finetune(result["finetune"], args)
    print("\n| towers | country acc | climate acc |")
    print("|---|---|---|")
    for name, r in result["retrieval"].items():
        print(f"| {name} | {100 * r['country']:.1f} % | {100 * r['climate']:.1f} % |")
    r = next(iter(result["retrieval"].values()))
    print(f"| chance / majority class | {100 / r['country_classes']:.1f} / {100 * r['country_majority']:.1f} % | "
          f"{100 / r['climate_classes']:.1f} / {100 * r['climate_majority']:.1f} % |")
    s = result["throughput"]
    print(f"\nThroughput ({args.batch_size} images, {result['threads']} threads): pretraining step {s['step']:.2f} s, "
          f"bare backbone forward + backward {s['bare']:.2f} s, ratio {s['step'] / s['bare']:.2f}")


def _print_finetune(rows: dict[str, list[dict]], args) -> None:
    print(f"\n| fine-tuning the plain model {args.finetune_epochs} epoch(s), seeds {args.finetune_seeds} | "
          + " | ".join(SHOWN) + " | seconds |")
    print("|---|" + "---|" * (len(SHOWN) + 1))
    for name, runs in rows.items():
        seconds = statistics.mean(m["finetune_seconds"] for m in runs)
        print(f"| {name} | " + " | ".join(_mean_std([m[k] for m in runs], k) for k in SHOWN) + f" | {seconds:.0f} |")


def _mean_std(values: list, key: str) -> str:
    values = [v for v in values if v is not None]
    scale, fmt = (100, ".1f") if key.startswith("acc") or key == "country_acc" else (1, ".0f")
    mean, std = scale * np.mean(values), scale * np.std(values)
    return f"{mean:{fmt}} ± {std:{fmt}}" if len(values) > 1 else f"{mean:{fmt}}"


if __name__ == "__main__":
    main()
