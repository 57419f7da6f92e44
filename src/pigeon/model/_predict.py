"""Predictions for a whole manifest, in the file format ``pigeon evaluate`` reads."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pigeon._progress import track
from pigeon.errors import InputError
from pigeon.model._geolocator import Geolocator

#: Columns of a predictions table: one row per (id, rank); rank 1 is the guess.
PREDICTION_COLUMNS = ("id", "rank", "lat", "lon", "prob", "cell", "country", "admin1")


def predict_manifest(geo: Geolocator, df: pd.DataFrame, embeddings=None, top_k: int = 5,
                     batch_size: int = 64) -> pd.DataFrame:
    """Top-k predictions for every row of a manifest.

    Args:
        geo: the model.
        df: a manifest (from :func:`pigeon.data.read_manifest`; image paths relative to ``df.attrs["root"]``).
        embeddings: an :class:`pigeon.embed.Embeddings` store made with the model's backbone to read instead of
            embedding the images (much faster); rows missing from it are an error.
        top_k: rows per id.
        batch_size: locations embedded per step when reading images.

    Returns:
        DataFrame with :data:`PREDICTION_COLUMNS`, ``top_k`` rows per id, rank 1 first.
    """
    from pigeon.data import image_views
    from pigeon.model._train import location_embeddings

    ids = df["id"].astype(str).to_numpy()
    if embeddings is not None:
        if embeddings.backbone != geo.config.get("backbone"):
            raise InputError(f"the embeddings were made with {embeddings.backbone!r} but the model uses "
                             f"{geo.config.get('backbone')!r}; embed with the model's backbone")
        X = location_embeddings(embeddings, ids, geo.config.get("train", {}).get("views", "mean"))
    else:
        views = image_views(df)
        chunks = range(0, len(views), batch_size)
        X = np.concatenate([geo.embed(views[i:i + batch_size]) for i in track(chunks, "embedding images")])
    preds = geo.predict_embeddings(X, top_k=top_k)
    rows = [(i, rank, c.lat, c.lon, c.prob, c.cell, c.country, c.admin1)
            for i, p in zip(ids, preds) for rank, c in enumerate(p.top_k, start=1)]
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
