"""The trained geolocator: a model folder, prediction from images or embeddings, probability maps.

A model folder holds ``config.json`` (backbone, head shapes, training config, versions), ``head.safetensors``,
``cells/`` (:meth:`GeoCells.save`), ``standardiser.json`` (when there is a regression head), ``meta.json`` and
the training record (``metrics.json``, ``train_log.jsonl``, ``curves.png``). Nothing is pickled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pigeon._io import atomic_path, provenance, read_json, versions, write_json
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.model._aux import Standardiser
from pigeon.model.layers import GeolocatorHead, HeadConfig

CONFIG = "config.json"
HEAD = "head.safetensors"
CELLS = "cells"
STANDARDISER = "standardiser.json"
BACKBONE_WEIGHTS = "backbone.safetensors"
META = "meta.json"
_RETRAIN = "retrain it with 'pigeon train'"

#: Models that ship inside the package, loadable by name: ``Geolocator.from_pretrained("demo")``.
PRETRAINED = {
    "demo": "the 'pigeon demo' model: EfficientNet-Lite0 on 4-view Blue Marble satellite views, 140 semantic cells "
            "(made by tools/build_demo_model.py; it knows satellite imagery, not street photos)",
}

ImageLike = str | os.PathLike | Image.Image


def pretrained_path(name: str) -> Path:
    """The folder of a bundled model of :data:`PRETRAINED`."""
    from importlib import resources

    return Path(str(resources.files("pigeon") / "resources" / f"{name}_model"))


@dataclass
class Candidate:
    """One of the top-k cells of a prediction."""

    cell: int
    prob: float
    lat: float
    lon: float
    country: str | None = None
    admin1: str | None = None


@dataclass
class Prediction:
    """Where one location (one image or several views) was taken.

    Attributes:
        lat, lon: the guess, degrees: the centroid of the most probable cell.
        confidence: probability of that cell, in [0, 1].
        cell: its index.
        top_k: the k most probable cells, best first.
        aux: auxiliary predictions when the model has those heads: ``climate`` (Köppen class and prob),
            ``month`` (1..12 and prob) and regression values in their units (``elevation_m`` ...).
        probs: (C,) float32 probability of every cell (sums to 1).
    """

    lat: float
    lon: float
    confidence: float
    cell: int
    top_k: list[Candidate]
    aux: dict[str, Any] = field(default_factory=dict)
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    _cells: Any = field(default=None, repr=False, compare=False)

    @property
    def country(self) -> str | None:
        return self.top_k[0].country if self.top_k else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the full probability vector)."""
        return {"lat": self.lat, "lon": self.lon, "confidence": self.confidence, "cell": self.cell,
                "country": self.country, "top_k": [vars(c) for c in self.top_k], "aux": self.aux}

    def to_geojson(self) -> dict[str, Any]:
        """A GeoJSON FeatureCollection: every cell polygon with its probability (the probability map)."""
        from shapely.geometry import mapping

        table = self._cells.table
        features = []
        for i, (geom, p) in enumerate(zip(table.geometry, self.probs)):
            features.append({
                "type": "Feature", "geometry": mapping(geom) if geom is not None else None,
                "properties": {"cell": i, "prob": float(p), "country": _text(table, "country", i),
                               "admin1": _text(table, "admin1", i),
                               "centroid_lat": float(self._cells.centroids[i, 0]),
                               "centroid_lon": float(self._cells.centroids[i, 1])},
            })
        return {"type": "FeatureCollection", "features": features,
                "properties": {"lat": self.lat, "lon": self.lon, "confidence": self.confidence}}


def _text(table, column: str, i: int) -> str | None:
    if column not in table.columns:
        return None
    value = table[column].iat[i]
    return value if isinstance(value, str) and value else None


class Geolocator:
    """Geocell head (+ auxiliary heads) over an image backbone.

    >>> geo = Geolocator.from_pretrained("pigeon-demo/model")
    >>> [pred] = geo.predict("photo.jpg", top_k=5)
    >>> pred.lat, pred.lon, pred.top_k[0].country

    Args:
        head: the trained :class:`GeolocatorHead`.
        cells: the :class:`pigeon.cells.GeoCells` the head classifies into.
        config: the model's ``config.json`` content (``backbone``, ``head``, ``train``, ...).
        standardiser: inverse transform of the regression head (needed when it exists).
        backbone: an already loaded backbone; by default loaded on first use from ``config["backbone"]``.
        backbone_weights: fine-tuned backbone parameters (the last block) laid over the registry weights.
    """

    def __init__(self, head: GeolocatorHead, cells, config: dict[str, Any],
                 standardiser: Standardiser | None = None, backbone=None,
                 backbone_weights: dict[str, torch.Tensor] | None = None) -> None:
        if head.cfg.n_cells != len(cells):
            raise InputError(f"the head predicts {head.cfg.n_cells} cells but the geocells have {len(cells)}; "
                             f"the model folder is inconsistent: {_RETRAIN}")
        if head.regression is not None and standardiser is None:
            raise InputError("the model has a regression head but no standardiser; " + _RETRAIN)
        self.head = head.eval()
        self.cells = cells
        self.config = config
        self.standardiser = standardiser
        self.backbone_weights = backbone_weights
        self._backbone = backbone

    # ----------------------------------------------------------------- folders
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> Geolocator:
        """Load a model folder written by :meth:`save_pretrained` / ``pigeon train``, or a name of
        :data:`PRETRAINED` (e.g. ``"demo"``) when no such folder exists."""
        from safetensors.torch import load_file

        root = Path(path)
        if not root.exists() and str(path) in PRETRAINED:
            root = pretrained_path(str(path))
        if not root.is_dir():
            raise ArtifactNotFoundError(root, "pass a model folder made by 'pigeon train' (or 'pigeon demo'), or a "
                                        f"bundled model name ({', '.join(PRETRAINED)})")
        config = read_json(root / CONFIG, hint=f"{root} is not a complete model folder; {_RETRAIN}")
        for name in (HEAD, CELLS):
            if not (root / name).exists():
                raise ArtifactNotFoundError(root / name, f"the model folder is incomplete; {_RETRAIN}")
        try:
            head = GeolocatorHead(HeadConfig.from_dict(config["head"]))
        except (KeyError, TypeError) as exc:
            raise InputError(f"{root / CONFIG} has no valid 'head' entry ({exc}); {_RETRAIN}") from None
        try:
            head.load_state_dict(load_file(str(root / HEAD)))
        except (RuntimeError, OSError, ValueError) as exc:
            raise InputError(f"{root / HEAD} does not match config.json ({str(exc).splitlines()[0][:120]}); "
                             + _RETRAIN) from None
        from pigeon.cells import GeoCells

        cells = GeoCells.load(root / CELLS)
        standardiser = Standardiser.load(root / STANDARDISER) if head.regression is not None else None
        weights = None
        if config.get("backbone_weights"):
            if not (root / BACKBONE_WEIGHTS).is_file():
                raise ArtifactNotFoundError(root / BACKBONE_WEIGHTS, f"the fine-tuned backbone is missing; {_RETRAIN}")
            weights = load_file(str(root / BACKBONE_WEIGHTS))
        geo = cls(head, cells, config, standardiser, backbone_weights=weights)
        if device is not None:
            geo.to(device)
        return geo

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``config.json``, ``head.safetensors``, ``cells/``, ``standardiser.json`` and ``meta.json``."""
        from safetensors.torch import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        self.config["head"] = self.head.cfg.to_dict()
        self.config["versions"] = versions()
        with atomic_path(root / HEAD) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(tmp))
        self.cells.save(root / CELLS)
        if self.standardiser is not None:
            self.standardiser.save(root / STANDARDISER)
        self.config["backbone_weights"] = BACKBONE_WEIGHTS if self.backbone_weights else None
        if self.backbone_weights:
            with atomic_path(root / BACKBONE_WEIGHTS) as tmp:
                save_file({k: v.contiguous() for k, v in self.backbone_weights.items()}, str(tmp))
        write_json(root / CONFIG, self.config)
        write_json(root / META, provenance("model", {k: v for k, v in self.config.items() if k != "versions"}))
        return root

    def to(self, device: str | torch.device) -> Geolocator:
        """Move the head (and a loaded backbone) to ``device``."""
        self.head.to(device)
        if self._backbone is not None:
            self._backbone.to(device)
        return self

    @property
    def n_cells(self) -> int:
        return self.head.cfg.n_cells

    @property
    def backbone(self):
        """The image backbone named in ``config.json`` (loaded on first use)."""
        if self._backbone is None:
            from pigeon.backbones import load

            self._backbone = load(self.config["backbone"], device=self._device)
            if self.backbone_weights:
                unexpected = self._backbone.load_state_dict(self.backbone_weights, strict=False).unexpected_keys
                if unexpected:
                    raise InputError(f"{BACKBONE_WEIGHTS} does not fit backbone {self.config['backbone']!r} "
                                     f"(e.g. {unexpected[0]!r}); " + _RETRAIN)
            if self._backbone.embed_dim != self.head.cfg.in_dim:
                raise InputError(f"backbone {self.config['backbone']!r} gives {self._backbone.embed_dim}-d "
                                 f"embeddings but the head expects {self.head.cfg.in_dim}; " + _RETRAIN)
        return self._backbone

    @property
    def _device(self) -> torch.device:
        return self.head.feature_mean.device

    # ------------------------------------------------------------- prediction
    @torch.no_grad()
    def forward_embeddings(self, X: np.ndarray, batch_size: int = 4096) -> dict[str, np.ndarray]:
        """Raw head outputs for embeddings ``X`` (N, D): ``probs`` (N, C) and the auxiliary outputs.

        ``climate``/``month`` are (N, K) probabilities, ``regression`` (N, R) values in the columns' units.
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.head.cfg.in_dim:
            raise InputError(f"embeddings must have shape (N, {self.head.cfg.in_dim}), got {X.shape}; "
                             "embed with the model's backbone " + repr(self.config.get("backbone")))
        parts: dict[str, list[np.ndarray]] = {}
        for i in range(0, len(X), batch_size):
            out = self.head(torch.from_numpy(X[i:i + batch_size]).to(self._device))
            for name, value in out.items():
                value = value.float() if name == "regression" else torch.softmax(value.float(), dim=1)
                parts.setdefault("probs" if name == "geocell" else name, []).append(value.cpu().numpy())
        result = {k: np.concatenate(v) for k, v in parts.items()}
        if "regression" in result:
            result["regression"] = self.standardiser.inverse_transform(result["regression"])
        return result

    def predict_embeddings(self, X: np.ndarray, top_k: int = 5) -> list[Prediction]:
        """One :class:`Prediction` per row of ``X`` (N, D) (view-averaged embeddings)."""
        if top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        out = self.forward_embeddings(X)
        probs = out["probs"]
        k = min(top_k, self.n_cells)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        cents = np.asarray(self.cells.centroids, dtype=np.float64)
        table = self.cells.table
        preds = []
        for n in range(len(probs)):
            cands = [Candidate(int(c), float(probs[n, c]), float(cents[c, 0]), float(cents[c, 1]),
                               _text(table, "country", c), _text(table, "admin1", c)) for c in order[n]]
            best = cands[0]
            preds.append(Prediction(best.lat, best.lon, best.prob, best.cell, cands, self._aux(out, n),
                                    probs[n], self.cells))
        return preds

    def _aux(self, out: dict[str, np.ndarray], n: int) -> dict[str, Any]:
        aux: dict[str, Any] = {}
        if "climate" in out:
            k = int(out["climate"][n].argmax())
            aux["climate"] = {"class": self.config["climate_classes"][k], "prob": float(out["climate"][n, k])}
        if "month" in out:
            k = int(out["month"][n].argmax())
            aux["month"] = {"month": k + 1, "prob": float(out["month"][n, k])}
        if "regression" in out:
            aux.update({c: float(v) for c, v in zip(self.standardiser.columns, out["regression"][n])})
        return aux

    def embed(self, images: ImageLike | Sequence[ImageLike | Sequence[ImageLike]]) -> np.ndarray:
        """Embeddings (N, D) of N locations; a location given as several views gets their mean.

        Args:
            images: a path or PIL image (one location), or a list whose items are each a path/PIL image
                (one location) or a list of paths/PIL images (the views of one location).
        """
        locations = _locations(images)
        if self.config.get("train", {}).get("views") == "first":  # a single-view model sees one view
            locations = [views[:1] for views in locations]
        emb = self.backbone.embed([view for views in locations for view in views])
        bounds = np.cumsum([0] + [len(v) for v in locations])
        means = [emb[a:b].astype(np.float64).mean(0) for a, b in zip(bounds[:-1], bounds[1:])]
        return np.stack(means).astype(np.float32)

    def predict(self, images: ImageLike | Sequence[ImageLike | Sequence[ImageLike]],
                top_k: int = 5) -> list[Prediction]:
        """Geolocate images: one :class:`Prediction` per location (see :meth:`embed` for the input forms)."""
        return self.predict_embeddings(self.embed(images), top_k=top_k)


def _locations(images) -> list[list[ImageLike]]:
    """Normalise the accepted input forms to a list of locations, each a non-empty list of views."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [[images]]
    locations = [[item] if isinstance(item, (str, os.PathLike, Image.Image)) else list(item) for item in images]
    if not locations:
        raise InputError("no images given; pass at least one image path")
    for i, views in enumerate(locations):
        if not views:
            raise InputError(f"location {i} has no views; give each location at least one image")
        bad = [v for v in views if not isinstance(v, (str, os.PathLike, Image.Image))]
        if bad:
            raise InputError(f"location {i}: {type(bad[0]).__name__} is not an image; pass paths or PIL images")
    return locations
