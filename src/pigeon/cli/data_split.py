"""``pigeon data split`` and ``pigeon data decontaminate``; the split options that ingest and bluemarble share."""

from __future__ import annotations

from pathlib import Path

import typer

from pigeon._config import drop_unset
from pigeon.cli._app import data_app
from pigeon.cli._options import described
from pigeon.data._config import DEFAULT_REGIONS, SplitConfig, parse_split


def _split(text: str, name: str) -> str:
    return described(text, SplitConfig, name)


# The split options of 'data split', 'data ingest' and 'data bluemarble' (unset = the library's default).
BY = typer.Option(None, "--by", help=_split("random (per row), region (whole areas) or cell (whole geocells).", "by"))
FRACTIONS = typer.Option(None, "--fractions", "--split", help=_split("train,val,test fractions.", "fractions"))
BUFFER_KM = typer.Option(None, "--buffer-km", help=_split("Leave out training rows closer than this to a val/test "
                         "row (km, measured between locations and view centres).", "buffer_km"))
REGIONS = typer.Option(None, "--regions", help=described(
    "Regions for --by region, or about the number of on-the-fly cells for --by cell.", SplitConfig, "n_regions",
    shown=lambda v: str(DEFAULT_REGIONS if v is None else v)))
SEED = typer.Option(None, "--seed", help=_split("Random seed of the split.", "seed"))
CELLS = typer.Option(None, "--cells", help="With --by cell: a geocells folder (default: naive cells made on the fly).")


def split_config(by: str | None, fractions: str | None, buffer_km: float | None, seed: int | None,
                 regions: int | None, cells: Path | None, always: bool = False):
    """The :class:`~pigeon.data.SplitConfig` the options ask for; None when none is set (unless ``always``)."""
    options = {"by": by, "fractions": parse_split(fractions) if fractions is not None else None,
               "buffer_km": buffer_km, "n_regions": regions, "cells": str(cells) if cells is not None else None}
    if not drop_unset(options) and not always:  # --seed alone is the data's seed, not a split
        return None
    return SplitConfig().with_options(**options, seed=seed)


def split_summary(df) -> str:
    """``train 800, val 100, test 100; 37 left out by the 905 km buffer``."""
    info = df.attrs.get("meta", {}).get("split", {})
    counts = info.get("counts") or {s: int((df["split"] == s).sum()) for s in ("train", "val", "test")}
    text = ", ".join(f"{s} {counts.get(s, 0)}" for s in ("train", "val", "test"))
    if info.get("by", "random") != "random":
        text += f" by {info['by']}"
    if counts.get("excluded"):
        text += f"; {counts['excluded']} left out by the {info['buffer_km']:g} km buffer"
    if info.get("min_heldout_to_train_km") is not None and info.get("buffer_km"):
        text += f"; val/test rows at least {info['min_heldout_to_train_km']:,.0f} km from training"
    return text


@data_app.command("split")
def split_command(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or .csv) with lat/lon."),
    out: Path = typer.Option(..., "-o", "--out", help="Output manifest with a new 'split' column."),
    by: str = BY,
    fractions: str = FRACTIONS,
    buffer_km: float = BUFFER_KM,
    seed: int = SEED,
    regions: int = REGIONS,
    cells: Path = CELLS,
) -> None:
    """Split into train/val/test; --by region or cell holds out whole areas, --buffer-km keeps them apart.

    Example: pigeon data split photos.parquet -o split.parquet --by region --buffer-km 100 --seed 0
    """
    from pigeon.data import read_manifest, split_manifest, write_manifest

    config = split_config(by, fractions, buffer_km, seed, regions, cells, always=True)
    df = split_manifest(read_manifest(manifest), config)
    write_manifest(df, out)
    typer.echo(f"{split_summary(df)} -> {out}")


@data_app.command("decontaminate")
def decontaminate_command(
    train: Path = typer.Argument(..., help="The training manifest to clean."),
    against: Path = typer.Option(..., "--against", help="The test manifest (all of its rows)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output manifest: the training rows that are kept."),
    km: float = typer.Option(None, "--km", help="Drop training rows closer than this to a test row (km)."),
    embeddings: Path = typer.Option(None, "--embeddings", help="Embeddings of the training rows (from 'pigeon "
                                    "embed'); they may also hold the test rows."),
    against_embeddings: Path = typer.Option(None, "--against-embeddings", help="Embeddings of the test rows "
                                            "(default: --embeddings)."),
    max_similarity: float = typer.Option(None, "--max-similarity", help="Drop training rows with a view whose "
                                         "cosine similarity to a test view is above this (e.g. 0.95)."),
) -> None:
    """Drop training rows near a test location or with a near-duplicate image; list each with the reason.

    Example: pigeon data decontaminate train.parquet --against im2gps3k.parquet --km 1 -o train_clean.parquet
    """
    from pigeon.data import read_manifest, write_manifest, write_table
    from pigeon.data.decontaminate import decontaminate, report_path
    from pigeon.embed import Embeddings

    emb = Embeddings.load(embeddings) if embeddings is not None else None
    against_emb = Embeddings.load(against_embeddings) if against_embeddings is not None else None
    clean, removed = decontaminate(read_manifest(train), read_manifest(against), km, embeddings=emb,
                                   against_embeddings=against_emb, max_similarity=max_similarity)
    write_manifest(clean, out)
    write_table(removed, report_path(out))
    info = clean.attrs["meta"]["decontamination"]
    parts = []
    if km is not None:
        parts.append(f"{info['removed_within_km']} within {km:g} km")
    if max_similarity is not None:
        parts.append(f"{info['removed_near_duplicates']} near-duplicate image(s)")
        if info["unchecked_without_embeddings"]:
            parts.append(f"{info['unchecked_without_embeddings']} row(s) without embeddings not checked")
    typer.echo(f"removed {info['removed']} of {info['n_train']} training rows ({'; '.join(parts)}); "
               f"kept {len(clean)} -> {out}; reasons -> {report_path(out)}")
