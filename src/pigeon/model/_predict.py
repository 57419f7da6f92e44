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
from pigeon.geo import RADII_KM
from pigeon.model._config import DEFAULT_TOP_K
from pigeon.model._geolocator import Geolocator
from pigeon.model._views import location_embeddings

#: Columns of a predictions table: one row per (id, rank); rank 1 is the guess. ``prob`` is the probability the
#: candidates are ranked by (the placing method's with ``--guess mode``), ``cell_prob`` the posterior probability of
#: the candidate's cell (the head's softmax when the model has no calibration).
PREDICTION_COLUMNS = ("id", "rank", "lat", "lon", "prob", "cell_prob", "cell", "country", "admin1", "refined")
#: What the posterior says of the guess, on each id's rank-1 row (empty on the others): the objective, P(within r km)
#: (only when the model has a gallery), the unseen-ground score, the expected km, and the credible region (its mass
#: asked for and held, area, and cells joined by ``;``).
P_WITHIN_COLUMNS = tuple(f"p_within_{r}km" for r in RADII_KM)
POSTERIOR_COLUMNS = ("guess", *P_WITHIN_COLUMNS, "unseen", "expected_km", "credible_q", "credible_mass",
                     "credible_area_km2", "credible_cells")
#: Columns of the failures table (:func:`predict_manifest` ``.attrs["failures"]``).
FAILURE_COLUMNS = ("id", "image", "error")


def predict_manifest(geo: Geolocator, df: pd.DataFrame, embeddings=None, top_k: int = DEFAULT_TOP_K,
                     batch_size: int = 64, method: str | None = None, skip_errors: bool = False, *,
                     guess: str | None = None, credible: float | None = None,
                     p_within: bool | None = None) -> pd.DataFrame:
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
        guess, credible: the objective and the credible mass (see :meth:`Geolocator.predict_embeddings`).
        p_within: write the P(within r) columns: None when the model has a gallery, True (an error without
            one), False never.

    Returns:
        DataFrame with :data:`PREDICTION_COLUMNS` and :data:`POSTERIOR_COLUMNS` (without the P(within r) ones when
        there are none), ``top_k`` rows per predicted id, rank 1 first; ``.attrs["failures"]`` lists the unreadable
        images (:data:`FAILURE_COLUMNS`).
    """
    method = geo.resolve_method(method)
    geo.check_answer(guess, credible, p_within)
    X, kept, failures = manifest_embeddings(geo, df, embeddings, batch_size=batch_size, skip_errors=skip_errors)
    preds = geo.predict_embeddings(X, top_k=top_k, method=method, guess=guess, credible=credible) if len(X) else []
    rows = [(i, rank, c.lat, c.lon, c.prob, c.cell_prob, c.cell, c.country, c.admin1, p.refined)
            for i, p in zip(kept, preds) for rank, c in enumerate(p.top_k, start=1)]
    table = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    with_p = geo.support.has_gallery if p_within is None else p_within
    table = pd.concat([table, posterior_columns(preds, with_p)], axis=1)
    table.attrs["failures"] = failures
    return table


def posterior_columns(preds, with_p_within: bool) -> pd.DataFrame:
    """:data:`POSTERIOR_COLUMNS` of the rows of :func:`predict_manifest`: values on each rank-1 row, empty below
    (``""`` in the text columns, NaN in the others)."""
    ranks = np.array([len(p.top_k) for p in preds], np.int64)
    first = np.concatenate([[0], np.cumsum(ranks)[:-1]]).astype(np.int64) if len(preds) else ranks
    values = {
        "guess": [p.guess for p in preds],
        **{c: [p.p_within[r] if p.p_within else np.nan for p in preds] for c, r in zip(P_WITHIN_COLUMNS, RADII_KM)},
        "unseen": [np.nan if p.unseen is None else p.unseen for p in preds],
        "expected_km": [p.expected_km for p in preds],
        "credible_q": [p.credible.q for p in preds], "credible_mass": [p.credible.mass for p in preds],
        "credible_area_km2": [p.credible.area_km2 for p in preds],
        "credible_cells": [";".join(map(str, p.credible.cells.tolist())) for p in preds],
    }
    out = {}
    for column in POSTERIOR_COLUMNS:
        if column in P_WITHIN_COLUMNS and not with_p_within:
            continue
        text = column in ("guess", "credible_cells")
        full = np.full(int(ranks.sum()), "" if text else np.nan, dtype=object if text else np.float64)
        full[first] = values[column]
        out[column] = full
    return pd.DataFrame(out)


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
                          split: str | None = None, embeddings=None, top_k: int = DEFAULT_TOP_K,
                          method: str | None = None, skip_errors: bool = False, batch_rows: int = 65_536,
                          guess: str | None = None, credible: float | None = None,
                          p_within: bool | None = None) -> ManifestRun:
    """:func:`predict_manifest` over a manifest file, streamed: one batch of rows and its predictions in memory.

    The predictions file (``.csv`` or ``.parquet``) is written batch by batch and appears only when every batch is
    done; it records the model, method and manifest in its metadata. Raises :class:`InputError` when no location
    could be predicted.
    """
    from pigeon._io import provenance, write_table_batches
    from pigeon.data import iter_manifest, manifest_rows

    method = geo.resolve_method(method)
    geo.check_answer(guess, credible, p_within)
    guess = geo.posterior_config.guess if guess is None else guess
    failures: list[pd.DataFrame] = []
    counts = {"rows": 0, "predicted": 0}

    def tables():
        batches = iter_manifest(manifest, batch_rows=batch_rows, split=split, require_coords=False)
        bar = progress() if embeddings is not None else contextlib.nullcontext()  # else each batch shows its own
        with bar:
            task = bar.add_task("predicting", total=manifest_rows(manifest), info="") if embeddings is not None else 0
            for df in batches:
                table = predict_manifest(geo, df, embeddings, top_k=top_k, method=method, skip_errors=skip_errors,
                                         guess=guess, credible=credible, p_within=p_within)
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
                                      "guess": guess, "calibrated": not geo.calibration.identity,
                                      "top_k": top_k, "manifest": str(manifest), "split": split})
    write_table_batches(tables(), out, meta)
    table = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=list(FAILURE_COLUMNS))
    return ManifestRun(counts["rows"], counts["predicted"], table, Path(out))
