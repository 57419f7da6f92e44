"""The one place where the service calls the model: a batch of requests -> one embed + predict call.

Each request is one place (1..max_views views). The views of all requests go through a single
:meth:`Geolocator.embed` call, which averages the views of each place by the model's own rule; the embeddings
then go through :meth:`Geolocator.predict_embeddings` once per distinct placing method (``method=``, a name of the
placer registry), with the largest ``top_k`` asked for, and each request keeps its own ``top_k``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from pigeon.errors import InputError, UnknownNameError


@dataclass(frozen=True)
class Query:
    """What one request asks of the model."""

    views: Sequence[Image.Image]
    top_k: int
    method: str | None = None


def model_can_refine(geo) -> bool:
    """Whether the model has a retrieval refiner; ``refine`` is ignored while it has none."""
    return geo.refiner is not None


def query_method(geo, method: str | None, refine: bool | None = None) -> str:
    """The placing method of a request: ``method=`` (a method of the model, see ``/v1/info``), else the older
    ``refine=`` alias (false: ``cell``; true or absent: the model's default, which is ``cell`` without a refiner).

    Raises:
        InputError: an unknown method (with the closest names), one the model lacks, or a contradiction.
    """
    if method is None:
        return "cell" if refine is False else geo.resolve_method(None)
    if refine is False and method != "cell":
        raise InputError(f"refine=false means method=cell; it contradicts method={method}: drop one of them")
    from pigeon.model.placers import METHODS

    if method not in METHODS:
        raise UnknownNameError("placing method", method, geo.methods, hint="GET /v1/info lists the model's methods")
    return geo.resolve_method(method)


def predict_queries(geo, queries: Sequence[Query]) -> list:
    """One :class:`pigeon.model.Prediction` per query, computed in one batch."""
    emb = geo.embed([list(q.views) for q in queries])
    preds: list = [None] * len(queries)
    methods = [q.method or geo.resolve_method(None) for q in queries]
    for method in dict.fromkeys(methods):
        idx = [i for i, m in enumerate(methods) if m == method]
        out = geo.predict_embeddings(emb[idx], top_k=max(queries[i].top_k for i in idx), method=method)
        for i, pred in zip(idx, out):
            preds[i] = dataclasses.replace(pred, top_k=pred.top_k[:queries[i].top_k])
    return preds
