"""Predictions for a whole manifest, in the file format ``pigeon evaluate`` reads."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon._progress import progress
from pigeon.errors import InputError
from pigeon.model._config import DEFAULT_TOP_K
from pigeon.model._geolocator import Geolocator
from pigeon.model._views import location_embeddings

#: Columns of a predictions table: one row per (id, rank); rank 1 is the guess. ``prob`` is the placing method's
#: probability of the candidate, ``cell_prob`` the head's probability of its cell.
PREDICTION_COLUMNS = ("id", "rank", "lat", "lon", "prob", "cell_prob", "cell", "country", "admin1", "refined")
#: Columns of the failures table (:func:`predict_manifest` ``.attrs["failures"]``).
FAILURE_COLUMNS = ("id", "image", "error")


def predict_manifest(geo: Geolocator, df: pd.DataFrame, embeddings=None, top_k: int = DEFAULT_TOP_K, batch_size: int = 64,
                     method: str | None = None, skip_errors: bool = False) -> pd.DataFrame:
    """Top-k predictions for every row of a manifest.

    Args:
        geo: the model.
        df: a manifest (from :func:`pigeon.data.read_manifest`; image paths relative to ``df.attrs["root"]``).
        embeddings: an :class:`pigeon.embed.Embeddings` store made with the model's backbone to read instead of
            embedding the images (much faster); rows missing from it are an error.
        top_k: rows per id.
        batch_size: locations embedded per step when reading images.
        method: a placing method of the model (``"cell"``, ``"refine"``, ``"knn"``...; see
            :meth:`Geolocator.predict_embeddings`).
        skip_errors: leave unreadable images out (a location none of whose views can be read gets no rows)
            instead of stopping at the first one.

    Returns:
        DataFrame with :data:`PREDICTION_COLUMNS`, ``top_k`` rows per predicted id, rank 1 first;
        ``.attrs["failures"]`` lists the unreadable images (:data:`FAILURE_COLUMNS`).
    """
    method = geo.resolve_method(method)
    X, kept, failures = manifest_embeddings(geo, df, embeddings, batch_size=batch_size, skip_errors=skip_errors)
    preds = geo.predict_embeddings(X, top_k=top_k, method=method) if len(X) else []
    rows = [(i, rank, c.lat, c.lon, c.prob, c.cell_prob, c.cell, c.country, c.admin1, p.refined)
            for i, p in zip(kept, preds) for rank, c in enumerate(p.top_k, start=1)]
    table = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    table.attrs["failures"] = failures
    return table


def manifest_embeddings(geo: Geolocator, df: pd.DataFrame, embeddings=None, *, batch_size: int = 64,
                        skip_errors: bool = False) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Location embeddings of a manifest's rows under the model's backbone and view rule.

    Read from an embeddings store when given (it must be made with the model's backbone), else embedded from
    the images with a progress bar.

    Returns:
        ``(X, ids, failures)``: embeddings (n, D) of the rows in ``ids`` and a table of what was left out
        (:data:`FAILURE_COLUMNS`); without ``skip_errors`` any unreadable or missing row raises instead.
    """
    from pigeon.data import image_views

    ids = df["id"].astype(str).to_numpy()
    failures: list[tuple[str, str, str]] = []
    if embeddings is not None:
        if embeddings.backbone != geo.backbone_id:
            raise InputError(f"the embeddings were made with {embeddings.backbone!r} but the model uses "
                             f"{geo.backbone_id!r}; embed with the model's backbone (or leave the embeddings out "
                             "to embed the images with the model)")
        if skip_errors:
            present = np.array([i in embeddings for i in ids], bool)
            failures += [(i, "", f"no embedding in {embeddings.root}") for i in ids[~present]]
            ids = ids[present]
        X = location_embeddings(embeddings, ids, geo.view_rule)
    else:
        views = image_views(df)
        parts, kept = [], []
        with progress() as bar:
            task = bar.add_task("embedding images", total=sum(len(v) for v in views), info="")
            for lo in range(0, len(views), batch_size):
                chunk = views[lo:lo + batch_size]
                X_part, ok, bad = geo.embed_locations(chunk, batch_size=32, skip=skip_errors)
                parts.append(X_part)
                kept.append(ids[lo:lo + batch_size][ok])
                failures += [(ids[lo + i], str(image), str(exc)) for i, image, exc in bad]
                bar.update(task, advance=sum(len(v) for v in chunk))
        X = np.concatenate(parts) if parts else np.zeros((0, geo.head.cfg.in_dim), np.float32)
        ids = np.concatenate(kept) if kept else ids[:0]
    return X, ids, pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))


@dataclass
class ManifestRun:
    """What :func:`predict_manifest_file` did: rows read, locations predicted, what was left out, the file."""

    n_rows: int
    n_predicted: int
    failures: pd.DataFrame
    path: Path


def predict_manifest_file(geo: Geolocator, manifest: str | os.PathLike, out: str | os.PathLike, *,
                          split: str | None = None, embeddings=None, top_k: int = DEFAULT_TOP_K, method: str | None = None,
                          skip_errors: bool = False, batch_rows: int = 65_536) -> ManifestRun:
    """:func:`predict_manifest` over a manifest file, streamed: one batch of rows and its predictions in memory.

    The predictions file (``.csv`` or ``.parquet``) is written batch by batch and appears only when every batch is
    done; it records the model, method and manifest in its metadata. Raises :class:`InputError` when no location
    could be predicted.
    """
    from pigeon._io import provenance, write_table_batches
    from pigeon.data import iter_manifest, manifest_rows

    method = geo.resolve_method(method)
    failures: list[pd.DataFrame] = []
    counts = {"rows": 0, "predicted": 0}

    def tables():
        batches = iter_manifest(manifest, batch_rows=batch_rows, split=split, require_coords=False)
        bar = progress() if embeddings is not None else contextlib.nullcontext()  # else each batch shows its own
        with bar:
            task = bar.add_task("predicting", total=manifest_rows(manifest), info="") if embeddings is not None else 0
            for df in batches:
                table = predict_manifest(geo, df, embeddings, top_k=top_k, method=method, skip_errors=skip_errors)
                failures.append(table.attrs["failures"])
                counts["rows"] += len(df)
                counts["predicted"] += table["id"].nunique()
                if embeddings is not None:
                    bar.update(task, completed=int(df.index[-1]) + 1)
                yield table
        if not counts["rows"]:
            raise InputError(f"{manifest}: no rows{f' with split={split!r}' if split else ''} to predict")
        if not counts["predicted"]:
            first = pd.concat(failures)["error"].iat[0]
            raise InputError(f"none of the {counts['rows']} location(s) could be predicted (e.g. {first}); fix the "
                             "images or the manifest paths")

    meta = provenance("predictions", {"backbone": geo.backbone_id, "n_cells": geo.n_cells, "method": method,
                                      "top_k": top_k, "manifest": str(manifest), "split": split})
    write_table_batches(tables(), out, meta)
    table = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=list(FAILURE_COLUMNS))
    return ManifestRun(counts["rows"], counts["predicted"], table, Path(out))
