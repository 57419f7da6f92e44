"""``pigeon refine build``: build a model's retrieval refiner from its training manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon.cli._app import refine_app
from pigeon.cli._options import described
from pigeon.errors import InputError
from pigeon.presets import preset_help
from pigeon.refine._config import RefineConfig


def _refine(text: str, name: str) -> str:
    return described(text, RefineConfig, name, stage="refine")


@refine_app.command("build")
def build_command(
    model: Path = typer.Argument(..., help="Model folder (from 'pigeon train'); the refiner is written into it."),
    manifest: Path = typer.Option(..., "--manifest", help="Training manifest: its train rows are the gallery."),
    embeddings: Path = typer.Option(None, "--embeddings", help="Embeddings folder made with the model's backbone "
                                    "(default: embed the images with the model, needed after fine-tuning)."),
    preset: str = typer.Option(None, "--preset", help=preset_help()),
    top_k: int = typer.Option(None, "--top-k", help=_refine("Candidate cells to choose among.", "top_k")),
    temperature: float = typer.Option(None, "--temperature", help=_refine("T of p_cell * softmax(score / T).",
                                                                          "temperature")),
    max_move_km: float = typer.Option(None, "--max-move-km", help=_refine(
        "Fall back to the top cell when the refined guess moves farther (km; none: no limit).", "max_move_km")),
    no_max_move: bool = typer.Option(False, "--no-max-move", help="No limit on the move."),
    min_samples: int = typer.Option(None, "--min-samples", help=_refine("OPTICS min_samples of the clusters.",
                                                                        "min_samples")),
    xi: float = typer.Option(None, "--xi", help=_refine("OPTICS xi of the clusters.", "xi")),
    noise: str = typer.Option(None, "--noise", help=_refine("OPTICS noise points: singletons (kept) or drop.",
                                                            "noise")),
    metric: str = typer.Option(None, "--metric", help=_refine("Embedding similarity: cosine or euclidean.",
                                                              "metric")),
    search: str = typer.Option(None, "--search", help=_refine("auto, exact (matrix products) or index (FAISS).",
                                                              "search")),
    index: str = typer.Option(None, "--index", help=_refine(
        "FAISS index of the clusters and the kNN gallery: auto (Flat, then IVF, then IVF-PQ above "
        f"{RefineConfig.pq_min_vectors:,} vectors) or a factory string such as IVF4096,PQ64, IVF4096,Flat or "
        "HNSW32.", "index")),
    nprobe: int = typer.Option(None, "--nprobe", help=_refine("Inverted lists searched per query (IVF); HNSW "
                                                              "searches 4 x nprobe deep.", "nprobe")),
    rerank: int = typer.Option(None, "--rerank", help=_refine("Candidates of a PQ index re-scored exactly against "
                                                              "the memory-mapped embeddings (0: none).", "rerank")),
    split: str = typer.Option("train", "--split", help="Manifest rows that form the gallery."),
) -> None:
    """Cluster the training locations inside each cell and store them with their embeddings in MODEL/refiner/.

    Example: pigeon refine build model/ --manifest data/manifest.parquet --embeddings emb/ --preset streetview
    """
    from pigeon.model import PRETRAINED, Geolocator, build_refiner
    from pigeon.presets import resolve

    if not model.is_dir():
        hint = " (a bundled model is read-only: copy its folder first)" if str(model) in PRETRAINED else ""
        raise InputError(f"{model} is not a model folder{hint}; pass the folder written by 'pigeon train'")
    if no_max_move and max_move_km is not None:
        raise InputError("pass either --max-move-km or --no-max-move, not both")
    config = resolve(RefineConfig, "refine", preset, top_k=top_k, temperature=temperature, max_move_km=max_move_km,
                     min_samples=min_samples, xi=xi, noise=noise, metric=metric, search=search, index=index,
                     nprobe=nprobe, rerank=rerank)
    if no_max_move:
        config = config.replace(max_move_km=None)
    geo = Geolocator.from_pretrained(model)
    geo.refiner = None
    geo.set_refiner(build_refiner(geo, manifest, embeddings, config, split=split))
    geo.config["preset"] = preset or geo.config.get("preset")
    geo.save_pretrained(model)
    r = geo.refiner
    typer.echo(f"refiner: {len(r):,} gallery locations in {len(r.clusters):,} clusters over "
               f"{r.meta['config']['cells_with_clusters']} of {geo.n_cells} cells (top {config.top_k}, "
               f"T {config.temperature}, max move {config.max_move_km} km) -> {model / 'refiner'}")
    for which, report in r.meta.get("indexes", {}).items():
        typer.echo(f"{which} index: {report['factory']} over {report['ntotal']:,} vectors, nprobe {report['nprobe']}"
                   f"{', re-ranked ' + str(report['rerank']) if report['lossy'] and report['rerank'] else ''}: "
                   f"recall@1 {report['recall_at_1']:.3f} against exact search ({report['recall_queries']} "
                   "leave-one-out queries)")
