"""The multi-view rule, written once: which views of a location are used, and how their embeddings combine.

PIGEON averages the embeddings of a location's views (its best setting); ``"first"`` keeps one view, for
single-image models. The mean itself is :func:`pigeon.embed._store.pool_views`, which the embeddings store uses for
its per-row mean (``Embeddings.get``), prediction for images and fine-tuning for a batch of locations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from pigeon.embed._store import pool_views  # noqa: F401  (the pooling lives with the store)
from pigeon.errors import InputError
from pigeon.model._config import VIEW_RULES

T = TypeVar("T")


def check_view_rule(rule: str) -> str:
    if rule not in VIEW_RULES:
        raise InputError(f"views must be one of {', '.join(VIEW_RULES)}, got {rule!r}")
    return rule


def select_views(views: Sequence[T], rule: str) -> Sequence[T]:
    """The views of one location that the rule uses."""
    return views[:1] if rule == "first" else views




def location_embeddings(emb, ids, rule: str = "mean") -> np.ndarray:
    """(N, D) float32 embeddings of ``ids`` from an :class:`pigeon.embed.Embeddings` store under ``rule``."""
    check_view_rule(rule)
    if rule == "mean":
        return emb.get(ids)  # the store's per-row mean of the readable views
    return np.stack([pool_views(select_views(v, rule)) for v in emb.get_views(ids)]).astype(np.float32)


class StoreRows:
    """The ``(N, D)`` embeddings of ``ids`` under a view rule, read from an embeddings store only when indexed.

    ``rows[positions]`` returns float32 rows (as :func:`location_embeddings` would), ``len(rows)`` and
    ``rows.shape`` need no read: what :func:`pigeon.model.fit_head` takes so that each process of a multi-process
    run reads only its own rows.
    """

    def __init__(self, emb, ids, rule: str = "mean") -> None:
        self.emb, self.ids, self.rule = emb, np.asarray(ids, dtype=object), check_view_rule(rule)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ids), self.emb.dim

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, positions) -> np.ndarray:
        return location_embeddings(self.emb, self.ids[positions], self.rule)
