"""The one place where the service calls the model: a batch of requests -> one embed + predict call.

Each request is one place (1..max_views views). The views of all requests go through a single
:meth:`Geolocator.embed` call, which averages the views of each place by the model's own rule; the embeddings
then go through :meth:`Geolocator.predict_embeddings` once per distinct placing method (``refine`` true/false) and
guess objective, with the largest ``top_k`` asked for, and each request keeps its own ``top_k``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Query:
    """What one request asks of the model."""

    views: Sequence[Image.Image]
    top_k: int
    refine: bool | None = None
    guess: str | None = None


def model_can_refine(geo) -> bool:
    """Whether the model has a retrieval refiner; ``refine`` is ignored while it has none."""
    return geo.refiner is not None


def method_of(geo, refine: bool | None) -> str:
    """The model's placing method for a request: refine unless asked not to (and only with a refiner)."""
    return "refine" if refine is not False and model_can_refine(geo) else "cell"


def predict_queries(geo, queries: Sequence[Query]) -> list:
    """One :class:`pigeon.model.Prediction` per query, computed in one batch."""
    emb = geo.embed([list(q.views) for q in queries])
    preds: list = [None] * len(queries)
    methods = [(method_of(geo, q.refine), q.guess) for q in queries]
    for method, guess in dict.fromkeys(methods):
        idx = [i for i, m in enumerate(methods) if m == (method, guess)]
        out = geo.predict_embeddings(emb[idx], top_k=max(queries[i].top_k for i in idx), method=method, guess=guess)
        for i, pred in zip(idx, out):
            preds[i] = dataclasses.replace(pred, top_k=pred.top_k[:queries[i].top_k])
    return preds
