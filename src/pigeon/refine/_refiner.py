"""The refiner: retrieval over location clusters inside the head's top cells (PIGEON section 5).

A ``refiner/`` folder (inside a model folder, or anywhere) holds::

    meta.json               provenance: RefineConfig, backbone, dim, cell count, gallery and cluster counts
    gallery.parquet         id, lat, lon, cell, cluster (-1: none) of every gallery row, cluster members contiguous
    clusters.parquet        cell, lat, lon, n_members of every cluster, grouped by cell
    embeddings.safetensors  "gallery" (N, D) and "clusters" (P, D) float16, ready for the metric (unit for cosine)
    clusters.faiss          FAISS index over the clusters (only when large enough to need a trained index)
    gallery.faiss           FAISS index over the gallery, for the nearest-neighbour baseline (likewise)

Nothing is pickled; the embeddings and the saved indexes are memory-mapped on load (see :func:`read_index`), so a
gallery of millions of locations costs little memory at prediction and serve time. ``meta.json`` records each
trained index (type, lists, memory mapping) and its recall@1 against exact search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pigeon._io import atomic_path, mmap_safetensors, provenance, read_json, write_json
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.geo import haversine_km
from pigeon.refine._config import RefineConfig
from pigeon.refine._prototypes import Prototypes, build_prototypes
from pigeon.refine._index import build_index, describe, read_index, recall_at_1, search, write_index
from pigeon.refine._search import best_in_ranges, cell_scores_exact, index_cell_scores, prepare
from pigeon.validation import check_labelled

META, GALLERY, CLUSTERS, EMBEDDINGS = "meta.json", "gallery.parquet", "clusters.parquet", "embeddings.safetensors"
#: Trained FAISS indexes (IVF, HNSW...) are saved as ``<name>.faiss``; exact ones are rebuilt on first use.
INDEXES = ("clusters", "gallery")
_REBUILD = "rebuild it with 'pigeon refine build MODEL --manifest TRAIN --embeddings EMB'"


@dataclass
class Refinement:
    """What :meth:`Refiner.refine` decides for a batch of B queries.

    Attributes:
        cell: (B,) chosen cell.
        lat, lon: (B,) chosen location: the nearest gallery member of the best cluster of the chosen cell (the
            head's guess where nothing was refined).
        refined: (B,) whether the location came from the gallery.
        order: (B, K) the candidates (columns of the input) from best to worst by ``p_cell * p_refine``.
        gallery_row: (B,) position of the chosen member in :attr:`Refiner.gallery` (-1 where not refined).
        probs: (B, K) the refined probability of each candidate (columns of the input), consistent with ``order``:
            ``p_cell * softmax(score / T)`` renormalised over the K candidates; where the order is the head's (a
            fallback to the top cell, or nothing refined), the head's probabilities renormalised over them.
    """

    cell: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    refined: np.ndarray
    order: np.ndarray
    gallery_row: np.ndarray
    probs: np.ndarray


class Refiner:
    """Location clusters of a gallery (the training locations and their embeddings), searched by embedding.

    Build with :meth:`build`, persist with :meth:`save` / :meth:`load`.

    Attributes:
        config: the :class:`RefineConfig`.
        gallery: DataFrame ``id, lat, lon, cell, cluster`` in gallery order.
        meta: provenance (``meta.json``).
    """

    def __init__(self, config: RefineConfig, gallery: pd.DataFrame, clusters: pd.DataFrame,
                 gallery_emb: np.ndarray, cluster_emb: np.ndarray, n_cells: int,
                 meta: dict[str, Any] | None = None) -> None:
        self.config = config.validate()
        self.gallery = gallery
        self.clusters = clusters
        self.n_cells = int(n_cells)
        self._gallery_emb = gallery_emb
        self._cluster_emb = cluster_emb
        cells = clusters["cell"].to_numpy(np.int64)
        self.cell_ptr = np.searchsorted(cells, np.arange(self.n_cells + 1)).astype(np.int64)
        self.proto_ptr = np.concatenate([[0], np.cumsum(clusters["n_members"].to_numpy(np.int64))])
        self._latlon = gallery[["lat", "lon"]].to_numpy(np.float64)
        self.meta = meta or {}
        self._indexes: dict[str, Any] = {}
        self.index_files: dict[str, Path] = {}

    # ------------------------------------------------------------------------------------------- building
    @classmethod
    def build(cls, X: np.ndarray, coords: np.ndarray, cells: np.ndarray, n_cells: int,
              config: RefineConfig | None = None, *, ids=None, backbone: str | None = None,
              show_progress: bool = True) -> Refiner:
        """Cluster the gallery's locations inside each cell and index their embeddings.

        Args:
            X: (N, D) gallery embeddings (view-averaged, the same rule and backbone as the queries).
            coords: (N, 2) their (lat, lon) degrees.
            cells: (N,) their geocell.
            n_cells: number of geocells of the model.
            config: a :class:`RefineConfig` (clustering and search settings).
            ids: (N,) gallery ids (default 0..N-1), kept to say which training image a guess came from.
            backbone: registry name of the backbone that made ``X`` (checked against the model's).
            show_progress: show progress bars.
        """
        config = (config or RefineConfig()).validate()
        X = np.asarray(X, dtype=np.float32)
        coords, cells = check_labelled(X, coords, cells, n_cells, "gallery embeddings")
        if not np.isfinite(X).all():
            raise InputError("gallery embeddings contain NaN or inf; re-embed the images")
        ids = np.arange(len(X)).astype(str) if ids is None else np.asarray(ids).astype(str)
        protos: Prototypes = build_prototypes(coords, cells, n_cells, min_samples=config.min_samples,
                                              xi=config.xi, noise=config.noise, show_progress=show_progress)
        order = protos.order
        member_of = np.full(len(X), -1, np.int64)
        member_of[:protos.n_members] = np.repeat(np.arange(protos.n_prototypes), np.diff(protos.proto_ptr))
        gallery = pd.DataFrame({"id": ids[order], "lat": coords[order, 0], "lon": coords[order, 1],
                                "cell": cells[order], "cluster": member_of})
        clusters = pd.DataFrame({"cell": protos.proto_cell, "lat": protos.proto_latlon[:, 0],
                                 "lon": protos.proto_latlon[:, 1], "n_members": np.diff(protos.proto_ptr)})
        gallery_emb = prepare(X[order], config.metric)
        cluster_emb = _cluster_means(gallery_emb[:protos.n_members], protos.proto_ptr, config.metric)
        meta = provenance("refiner", {
            "refine": config.to_dict(), "backbone": backbone, "dim": int(X.shape[1]), "n_cells": int(n_cells),
            "n_gallery": int(len(X)), "n_clusters": int(protos.n_prototypes), "n_clustered": protos.n_members,
            "cells_with_clusters": int((np.diff(protos.cell_ptr) > 0).sum()),
        })
        refiner = cls(config, gallery, clusters, gallery_emb.astype(np.float16), cluster_emb.astype(np.float16),
                      n_cells, meta)
        for which in INDEXES:  # trained indexes take time: build them now, so they are saved with the refiner
            if refiner._needs_index(which) and refiner._index_type(which) != "Flat":
                refiner.index(which, show_progress=show_progress)
                refiner.meta.setdefault("indexes", {})[which] = refiner.index_report(which)
        return refiner

    # ------------------------------------------------------------------------------------------- folders
    def save(self, path: str | os.PathLike) -> Path:
        """Write the refiner folder (see the module docstring)."""
        from safetensors.numpy import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        for name, table in ((GALLERY, self.gallery), (CLUSTERS, self.clusters)):
            with atomic_path(root / name) as tmp:
                table.to_parquet(tmp, index=False)
        with atomic_path(root / EMBEDDINGS) as tmp:
            save_file({"gallery": np.ascontiguousarray(self._gallery_emb, dtype=np.float16),
                       "clusters": np.ascontiguousarray(self._cluster_emb, dtype=np.float16)}, str(tmp))
        for which in INDEXES:
            (root / f"{which}.faiss").unlink(missing_ok=True)
            if which in self._indexes and self._index_type(which) != "Flat":
                write_index(self._indexes[which], root / f"{which}.faiss")
        self.meta.setdefault("config", {})["refine"] = self.config.to_dict()
        write_json(root / META, self.meta)
        return root

    @classmethod
    def load(cls, path: str | os.PathLike) -> Refiner:
        """Open a refiner folder written by :meth:`save` (embeddings memory-mapped)."""
        root = Path(path)
        meta = read_json(root / META, hint=_REBUILD)
        if meta.get("kind") != "refiner":
            raise InputError(f"{root} is not a refiner folder (meta.json kind={meta.get('kind')!r}); " + _REBUILD)
        for name in (GALLERY, CLUSTERS, EMBEDDINGS):
            if not (root / name).is_file():
                raise ArtifactNotFoundError(root / name, "the refiner folder is incomplete; " + _REBUILD)
        try:
            gallery = pd.read_parquet(root / GALLERY)
            clusters = pd.read_parquet(root / CLUSTERS)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise InputError(f"{root}: damaged refiner table ({str(exc).splitlines()[0][:120]}); " + _REBUILD) from None
        tensors = mmap_safetensors(root / EMBEDDINGS)
        cfg = meta.get("config", {})
        gallery_emb, cluster_emb = tensors.get("gallery"), tensors.get("clusters")
        n_cells = cfg.get("n_cells")
        problems = [
            (gallery_emb is None or cluster_emb is None, "its embeddings file lacks the gallery or cluster tensor"),
            (not isinstance(n_cells, int), "meta.json has no cell count"),
            (gallery_emb is not None and len(gallery_emb) != len(gallery), "gallery table and embeddings differ"),
            (cluster_emb is not None and len(cluster_emb) != len(clusters), "cluster table and embeddings differ"),
            (not {"id", "lat", "lon", "cell", "cluster"} <= set(gallery.columns), "gallery table lacks columns"),
            (not {"cell", "lat", "lon", "n_members"} <= set(clusters.columns), "cluster table lacks columns"),
        ]
        for bad, what in problems:
            if bad:
                raise InputError(f"{root}: {what}; " + _REBUILD)
        refiner = cls(RefineConfig.from_dict(cfg.get("refine", {})), gallery, clusters, gallery_emb, cluster_emb,
                      n_cells, meta)
        refiner.index_files = {w: root / f"{w}.faiss" for w in INDEXES if (root / f"{w}.faiss").is_file()}
        return refiner

    # ------------------------------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return int(self._gallery_emb.shape[1])

    @property
    def backbone(self) -> str | None:
        return self.meta.get("config", {}).get("backbone")

    def __len__(self) -> int:
        return len(self.gallery)

    def __repr__(self) -> str:
        return (f"Refiner(gallery={len(self)}, clusters={len(self.clusters)}, dim={self.dim}, "
                f"noise={self.config.noise!r}, metric={self.config.metric!r})")

    # ------------------------------------------------------------------------------------------- search
    def search_backend(self) -> str:
        """``"exact"`` or ``"index"``: what :attr:`RefineConfig.search` resolves to for this gallery."""
        if self.config.search != "auto":
            return self.config.search
        return "exact" if len(self.clusters) <= self.config.exact_max_prototypes else "index"

    def _needs_index(self, which: str) -> bool:
        return which == "gallery" or self.search_backend() == "index"

    def _index_type(self, which: str) -> str:
        return self.config.index_type(len(self._vectors(which)), self.dim)

    def _vectors(self, which: str):
        return self._cluster_emb if which == "clusters" else self._gallery_emb

    def index(self, which: str, show_progress: bool = False):
        """The FAISS index over ``"clusters"`` or the ``"gallery"``: memory-mapped from the folder when saved there,
        else built from the (memory-mapped) embeddings batch by batch (exact ``Flat`` ones on first use)."""
        if which not in self._indexes:
            path = self.index_files.get(which)
            if path is not None:
                index = read_index(path, self.config.nprobe)
            else:
                index = build_index(self._vectors(which), self.config.metric, self._index_type(which),
                                    self.config.nprobe, show_progress=show_progress)
            self._indexes[which] = index
        return self._indexes[which]

    def _search(self, which: str, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)`` of the ``k`` nearest clusters or gallery rows; a lossy index's candidates are re-scored
        exactly (all of them for clusters, the best ``config.rerank`` for the gallery)."""
        rerank = k if which == "clusters" else self.config.rerank
        return search(self.index(which), Q, k, self.config.metric, exact=self._vectors(which), rerank=rerank)

    def index_report(self, which: str, queries: int = 500) -> dict[str, Any]:
        """Type, size and memory mapping of an index, and its recall@1 against exact search (leave-one-out over
        ``queries`` sampled rows, with the re-ranking that the refiner's searches use)."""
        rerank = self.config.index_neighbours if which == "clusters" else self.config.rerank
        recall = recall_at_1(self.index(which), self._vectors(which), self.config.metric, queries=queries,
                             exact=self._vectors(which), rerank=rerank)
        return {"factory": self._index_type(which), **describe(self.index(which)), "nprobe": self.config.nprobe,
                "rerank": rerank, "recall_at_1": round(recall, 4), "recall_queries": min(queries, len(self._vectors(which)))}

    def cell_scores(self, Q: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(B, K) similarity of each candidate cell's best cluster to the prepared queries (-inf: no cluster)."""
        if self.search_backend() == "exact":
            return cell_scores_exact(Q, candidates, self.cell_ptr, self._cluster_emb, self.config.metric)
        scores, ids = self._search("clusters", Q, min(self.config.index_neighbours, len(self.clusters)))
        return index_cell_scores(scores, ids, candidates, self.clusters["cell"].to_numpy(),
                                 self.cell_ptr[1:] > self.cell_ptr[:-1])

    def refine(self, X: np.ndarray, candidates: np.ndarray, probs: np.ndarray, head_guess: np.ndarray, *,
               temperature: float | None = None, max_move_km: float | None | str = "config") -> Refinement:
        """Choose a cell among each query's candidates and a location inside it.

        Args:
            X: (B, D) query embeddings (view-averaged, like the gallery's).
            candidates: (B, K) candidate cells, the head's most probable first.
            probs: (B, K) the head's probability of each candidate.
            head_guess: (B, 2) the unrefined guess (the top cell's centroid), for the move limit and fallback.
            temperature: overrides :attr:`RefineConfig.temperature`.
            max_move_km: overrides :attr:`RefineConfig.max_move_km` (None: no limit).
        """
        T = self.config.temperature if temperature is None else temperature
        limit = self.config.max_move_km if max_move_km == "config" else max_move_km
        if T <= 0:
            raise InputError(f"refine temperature must be > 0, got {T}")
        X = np.asarray(X, np.float32).reshape(len(candidates), -1)
        if X.shape[1] != self.dim:
            raise InputError(f"query embeddings have {X.shape[1]} dims but the refiner's gallery {self.dim}; "
                             + _REBUILD + " with the model's backbone")
        candidates = np.asarray(candidates, np.int64)
        probs = np.asarray(probs, np.float64)
        Q = prepare(X, self.config.metric)
        scores = self.cell_scores(Q, candidates)
        combined = probs * _softmax(scores.astype(np.float64) / T)
        order = np.argsort(-combined, axis=1, kind="stable")
        head_order = np.zeros(len(Q), bool)
        pick = order[:, 0]
        has_any = np.isfinite(scores).any(axis=1)
        cell = candidates[np.arange(len(Q)), pick]
        row = self._locate(Q, cell)
        lat, lon = self._row_latlon(row)
        if limit is not None:  # too far from the head's guess: fall back to the top cell (reference rule)
            far = has_any & (haversine_km(lat, lon, head_guess[:, 0], head_guess[:, 1]) > limit)
            if far.any():
                cell[far] = candidates[far, 0]
                row[far] = self._locate(Q[far], cell[far])
                lat, lon = self._row_latlon(row)
                first = np.argsort(np.where(np.arange(candidates.shape[1]) == 0, 0, 1), kind="stable")
                order[far] = first  # the top cell first, then the others in the head's order
                head_order |= far
        refined = row >= 0
        lat = np.where(refined, lat, head_guess[:, 0])
        lon = np.where(refined, lon, head_guess[:, 1])
        cell = np.where(refined, cell, candidates[:, 0])
        order[~refined] = np.arange(candidates.shape[1])
        head_order |= ~refined
        return Refinement(cell, lat, lon, refined, order, row, _refined_probs(probs, combined, head_order))

    def _locate(self, Q: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Gallery row of the nearest member of the best cluster of ``cell`` (-1: the cell has no cluster)."""
        cluster, _ = best_in_ranges(Q, self._cluster_emb, self.cell_ptr[cell], self.cell_ptr[cell + 1],
                                    self.config.metric)
        ok = cluster >= 0
        starts = np.where(ok, self.proto_ptr[np.maximum(cluster, 0)], 0)
        stops = np.where(ok, self.proto_ptr[np.maximum(cluster, 0) + 1], 0)
        row, _ = best_in_ranges(Q, self._gallery_emb, starts, stops, self.config.metric)
        return row

    def _row_latlon(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        safe = self._latlon[np.maximum(row, 0)]
        return np.where(row >= 0, safe[:, 0], np.nan), np.where(row >= 0, safe[:, 1], np.nan)

    # --------------------------------------------------------------------------------- nearest neighbours
    def nearest(self, X: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar gallery rows over the whole gallery (the retrieval baseline), via FAISS.

        Returns:
            ``(rows, scores)``, each (B, k): gallery positions (see :attr:`gallery`) and similarities.
        """
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        X = np.asarray(X, np.float32).reshape(-1, self.dim)
        scores, rows = self._search("gallery", prepare(X, self.config.metric), min(k, len(self)))
        return rows, scores


def _refined_probs(probs: np.ndarray, combined: np.ndarray, head_order: np.ndarray) -> np.ndarray:
    """Each row of ``combined`` (``probs`` where ``head_order``) renormalised to sum to 1 over the candidates."""
    weights = np.where(head_order[:, None], probs, combined)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax where -inf entries get 0; a row of only -inf gives zeros."""
    top = np.max(np.where(np.isfinite(z), z, -np.inf), axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(np.isfinite(z), np.exp(z - top), 0.0)
    total = e.sum(axis=1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def _cluster_means(emb: np.ndarray, ptr: np.ndarray, metric: str) -> np.ndarray:
    """Mean embedding of each cluster's members (re-normalised for cosine)."""
    if len(ptr) < 2:
        return np.zeros((0, emb.shape[1]), np.float32)
    sums = np.add.reduceat(emb.astype(np.float64), ptr[:-1], axis=0)
    means = (sums / np.diff(ptr)[:, None]).astype(np.float32)
    return prepare(means, metric)
