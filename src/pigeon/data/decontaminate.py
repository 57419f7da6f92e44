"""Decontamination: drop training rows that share ground, or an image, with a test set.

PIGEOTTO removed from its training data every image near a benchmark location, so that benchmark scores
measure generalisation rather than recall. :func:`decontaminate` does the same for any pair of manifests:

* **distance**: training rows closer than ``km`` to any test row (great-circle km between the closest pair of
  :func:`~pigeon.data.location_points`: locations and, where the manifests have them, view centres);
* **near-duplicate images**: training rows with a view whose embedding has a cosine similarity above
  ``max_similarity`` with a test view (the same photo re-uploaded, resized or re-encoded).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon.data.manifest import distance_to_rows_km, validate_manifest
from pigeon.errors import InputError

#: Columns of the report of removed rows.
REPORT_COLUMNS = ("id", "reason", "nearest_id", "distance_km", "similarity")


def report_path(clean_path: str | os.PathLike) -> Path:
    """Where the report of removed rows goes: ``train_clean.parquet`` -> ``train_clean-removed.csv``."""
    path = Path(clean_path)
    return path.with_name(f"{path.stem}-removed.csv")


def _view_vectors(emb, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-length per-view embeddings of the ``ids`` present in ``emb``: (vectors, row of each, rows present)."""
    present = np.flatnonzero([i in emb for i in ids])
    views = emb.get_views([ids[i] for i in present]) if len(present) else []
    rows = np.repeat(present, [len(v) for v in views]).astype(np.int64)
    vectors = np.concatenate(views) if views else np.zeros((0, emb.dim), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0), rows, present


def nearest_similarity(emb, ids, against_emb, against_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each id, the highest cosine similarity between one of its views and any view of ``against_ids``.

    Returns:
        ``(similarity (n,), nearest (n,), checked (n,) bool)``: NaN similarity and -1 for ids without embeddings.
    """
    from sklearn.neighbors import NearestNeighbors

    x, x_row, present = _view_vectors(emb, list(ids))
    y, y_row, _ = _view_vectors(against_emb, list(against_ids))
    sim, nearest = np.full(len(ids), np.nan), np.full(len(ids), -1, dtype=np.int64)
    checked = np.zeros(len(ids), dtype=bool)
    checked[present] = True
    if len(x) and len(y):
        dist, index = NearestNeighbors(n_neighbors=1, metric="cosine", algorithm="brute").fit(y).kneighbors(x)
        view_sim = 1.0 - dist[:, 0]
        order = np.lexsort((-view_sim, x_row))  # per row, the most similar view first
        first = order[np.r_[True, np.diff(x_row[order]) != 0]]
        sim[x_row[first]] = view_sim[first]
        nearest[x_row[first]] = y_row[index[first, 0]]
    return sim, nearest, checked


def decontaminate(
    train: pd.DataFrame,
    against: pd.DataFrame,
    km: float | None = None,
    *,
    embeddings=None,
    against_embeddings=None,
    max_similarity: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove the training rows within ``km`` of a test row, or with a near-duplicate image in it.

    Args:
        train: the manifest to clean.
        against: the test manifest (every row counts, whatever its ``split``).
        km: remove training rows closer than this (great-circle km); None: no distance rule.
        embeddings: :class:`~pigeon.embed.Embeddings` of the training rows (needed with ``max_similarity``).
        against_embeddings: embeddings of the test rows, made with the same backbone; default ``embeddings``.
        max_similarity: remove training rows with a view whose cosine similarity to a test view exceeds this.

    Returns:
        ``(clean, removed)``: the kept rows (``attrs["meta"]["decontamination"]`` records the rules and counts)
        and one row per removed training row with :data:`REPORT_COLUMNS` (``reason``: ``"within D km"``,
        ``"near-duplicate image"`` or both, joined by ``"; "``).
    """
    against_embeddings = _check_rules(km, max_similarity, embeddings, against_embeddings)
    attrs = dict(train.attrs)
    train = validate_manifest(train, where="training manifest")
    against = validate_manifest(against, where="test manifest")

    reasons = [[] for _ in range(len(train))]
    nearest_id = np.full(len(train), None, dtype=object)
    distance, nearest = distance_to_rows_km(train, against)
    similarity = np.full(len(train), np.nan)
    summary: dict = {"km": km, "max_similarity": max_similarity, "n_train": len(train), "n_against": len(against)}
    if km is not None:
        for row in np.flatnonzero(distance < km):
            reasons[row].append(f"within {km:g} km")
            nearest_id[row] = against["id"].iat[nearest[row]]
        summary["removed_within_km"] = int((distance < km).sum())
    if max_similarity is not None:
        similarity = _near_duplicates(train, against, embeddings, against_embeddings, max_similarity, reasons,
                                      nearest_id, summary)
    drop = np.array([bool(r) for r in reasons], dtype=bool)
    if drop.all():
        raise InputError(f"all {len(train)} training rows would be removed; check --against and the thresholds")
    removed = pd.DataFrame({"id": train["id"].to_numpy()[drop], "reason": ["; ".join(r) for r in reasons if r],
                            "nearest_id": nearest_id[drop], "distance_km": distance[drop],
                            "similarity": similarity[drop]}, columns=list(REPORT_COLUMNS))
    clean = train[~drop].copy()
    summary["removed"] = int(drop.sum())
    clean.attrs = {**attrs, "meta": {**attrs.get("meta", {}), "decontamination": summary}}
    return clean, removed


def _check_rules(km, max_similarity, embeddings, against_embeddings):
    """Check the rules before any work; the test rows' embeddings (default: the training rows' store)."""
    if km is None and max_similarity is None:
        raise InputError("nothing to check: give a distance (--km) and/or --embeddings with --max-similarity")
    if km is not None and not (math.isfinite(km) and km > 0):
        raise InputError(f"km={km!r}: give a distance in km > 0")
    if max_similarity is not None:
        if not (math.isfinite(max_similarity) and -1 <= max_similarity <= 1):
            raise InputError(f"max_similarity={max_similarity!r}: give a cosine similarity in [-1, 1], e.g. 0.95")
        if embeddings is None:
            raise InputError("--max-similarity needs --embeddings (the training rows' embeddings)")
    against_embeddings = against_embeddings if against_embeddings is not None else embeddings
    if embeddings is not None and against_embeddings.backbone != embeddings.backbone:
        raise InputError(f"the embeddings were made with different backbones ({embeddings.backbone!r} and "
                         f"{against_embeddings.backbone!r}); compare embeddings of one backbone")
    return against_embeddings


def _near_duplicates(train, against, embeddings, against_embeddings, max_similarity, reasons, nearest_id,
                     summary) -> np.ndarray:
    """Mark the training rows with a view more similar than ``max_similarity`` to a test view (in ``reasons``,
    ``nearest_id`` and ``summary``); each row's highest similarity (NaN: no embedding)."""
    similarity, sim_nearest, checked = nearest_similarity(embeddings, train["id"].tolist(),
                                                          against_embeddings, against["id"].tolist())
    dup = checked & (np.nan_to_num(similarity, nan=-np.inf) > max_similarity)
    for row in np.flatnonzero(dup):
        reasons[row].append("near-duplicate image")
        if nearest_id[row] is None:
            nearest_id[row] = against["id"].iat[sim_nearest[row]]
    summary.update(removed_near_duplicates=int(dup.sum()), unchecked_without_embeddings=int((~checked).sum()))
    if not checked.any():
        raise InputError("none of the training ids has an embedding; pass the embeddings of this manifest")
    return similarity
