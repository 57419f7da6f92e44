"""The one place where the service calls the model: a batch of requests -> one embed + predict call.

Each request is one place (1..max_views views). The views of all requests go through a single
:meth:`Geolocator.embed` call, which averages the views of each place by the model's own rule; the embeddings
then go through :meth:`Geolocator.predict_embeddings` once per distinct ``refine`` value, with the largest
``top_k`` asked for, and each request keeps its own ``top_k``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Query:
    """What one request asks of the model."""

    views: Sequence[Image.Image]
    top_k: int
    refine: bool | None = None


def model_can_refine(geo) -> bool:
    """Whether the model has a retrieval refiner; ``refine`` is ignored while it has none."""
    return _accepts_refine(geo) and getattr(geo, "refiner", None) is not None


def _accepts_refine(geo) -> bool:
    return "refine" in inspect.signature(geo.predict_embeddings).parameters


def predict_queries(geo, queries: Sequence[Query]) -> list:
    """One :class:`pigeon.model.Prediction` per query, computed in one batch."""
    emb = geo.embed([list(q.views) for q in queries])
    preds: list = [None] * len(queries)
    for refine in dict.fromkeys(q.refine for q in queries):
        idx = [i for i, q in enumerate(queries) if q.refine == refine]
        kwargs = {"refine": refine} if _accepts_refine(geo) else {}
        out = geo.predict_embeddings(emb[idx], top_k=max(queries[i].top_k for i in idx), **kwargs)
        for i, pred in zip(idx, out):
            preds[i] = dataclasses.replace(pred, top_k=pred.top_k[:queries[i].top_k])
    return preds
