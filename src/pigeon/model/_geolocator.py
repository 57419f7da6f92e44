"""The trained geolocator: a model folder, prediction from images or embeddings, probability maps.

A model folder holds ``config.json`` (backbone, head shapes, training config, the stages it has, versions),
``head.safetensors`` (none when the head is made of an artefact: GeoCLIP's published model takes its cell
probabilities from ``geoclip/``), ``cells/`` (:meth:`GeoCells.save`), ``standardiser.json`` (when there is a
regression head),
one sub-folder per artefact of the placing methods (``refiner/``: :class:`pigeon.refine.Refiner`, when built; see
:mod:`pigeon.model.placers`), ``calibration.json`` (optional: :class:`pigeon.posterior.Calibration`; without it the
head's probabilities are used as they are), ``README.md`` (the model card), ``meta.json`` and the training record
(``metrics.json``, ``train_log.jsonl``, ``curves.png``). ``config.json`` also records the posterior's settings
(``posterior``: the default guess). Nothing is pickled.

Prediction is a pipeline of stages: head (cell probabilities and auxiliary outputs) -> a placer of the registry
(the cell centroid, the refiner, the nearest gallery image...) -> :class:`Placement` -> the posterior (calibrated
cell masses spread over the training locations: the guess for an objective, P(within r), the credible region;
:mod:`pigeon.model._answer`) -> :func:`build_predictions`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pigeon._io import atomic_path, provenance, read_json, read_tensors, versions, write_json
from pigeon.errors import ArtifactNotFoundError, InputError, PigeonError
from pigeon.model._artefacts import Artefacts
from pigeon.model._aux import Standardiser
from pigeon.model import placers
from pigeon.model._answer import Answers, default_posterior_config
from pigeon.model._config import DEFAULT_TOP_K
from pigeon.model._prediction import Placement, Prediction, build_predictions, top_cells
from pigeon.posterior import Calibration, CellSupport, Posterior
from pigeon.model._views import pool_views, select_views
from pigeon.model.layers import GeolocatorHead, HeadConfig

CONFIG = "config.json"
HEAD = "head.safetensors"
CELLS = "cells"
STANDARDISER = "standardiser.json"
BACKBONE_WEIGHTS = "backbone.safetensors"
CALIBRATION = "calibration.json"
MODEL_CARD = "README.md"
META = "meta.json"
_RETRAIN = "retrain it with 'pigeon train'"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

#: Models that ship inside the package, loadable by name: ``Geolocator.from_pretrained("demo")``.
PRETRAINED = {
    "demo": "the 'pigeon demo' model: EfficientNet-Lite0 on 4-view Blue Marble satellite views, semantic cells and "
            "a refiner (made by tools/build_demo_model.py; it knows satellite imagery, not street photos)",
    "geoclip": "GeoCLIP's published model (NeurIPS 2023, MIT): CLIP ViT-L/14 features placed on its 100K MP-16 GPS "
               "gallery; weights read from the geoclip wheel (pip install 'pigeon-geo[peers]'), CLIP ViT-L/14 from "
               "the model hub or --backbone clip:DIR (made by tools/build_geoclip_model.py)",
}

ImageLike = str | os.PathLike | Image.Image


def pretrained_path(name: str) -> Path:
    """The folder of a bundled model of :data:`PRETRAINED`."""
    from importlib import resources

    return Path(str(resources.files("pigeon") / "resources" / f"{name}_model"))


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A model folder: a local folder, a bundled name (:data:`PRETRAINED`) or a model-hub id ``owner/name``
    (downloaded through ``huggingface_hub``, or found in its cache when offline)."""
    root = Path(path)
    if root.is_dir():
        return root
    if str(path) in PRETRAINED:
        return pretrained_path(str(path))
    if _HUB_ID.match(str(path)) and not root.exists():
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            return Path(snapshot_download(repo_id=str(path)))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ArtifactNotFoundError(path, f"not a local folder, and the model hub could not provide it "
                                        f"({reason}); check the id and your connection, or pass a folder") from None
    raise ArtifactNotFoundError(root, "pass a model folder made by 'pigeon train' (or 'pigeon demo'), a bundled "
                                f"model name ({', '.join(PRETRAINED)}) or a model-hub id OWNER/NAME")


class Geolocator:
    """Geocell head (+ auxiliary heads) over an image backbone, with an optional retrieval refiner.

    >>> geo = Geolocator.from_pretrained("pigeon-demo/model")
    >>> [pred] = geo.predict("photo.jpg", top_k=5)
    >>> pred.lat, pred.lon, pred.refined, pred.top_k[0].country

    Args:
        head: the trained :class:`GeolocatorHead`.
        cells: the :class:`pigeon.cells.GeoCells` the head classifies into.
        config: the model's ``config.json`` content (``backbone``, ``head``, ``train``, ...).
        standardiser: inverse transform of the regression head (needed when it exists).
        backbone: an already loaded backbone; by default loaded on first use from ``config["backbone"]``.
        backbone_weights: fine-tuned backbone parameters (the last block) laid over the registry weights.
        refiner: a :class:`pigeon.refine.Refiner` built on embeddings of this model's backbone.
        artefacts: what the placing methods need, by artefact name (:func:`pigeon.model.placers.artefacts`).
        calibration: a :class:`pigeon.posterior.Calibration` fitted for this head and refiner (default: none, the
            head's probabilities as they are).
    """

    def __init__(self, head: GeolocatorHead, cells, config: dict[str, Any],
                 standardiser: Standardiser | None = None, backbone=None,
                 backbone_weights: dict[str, torch.Tensor] | None = None, refiner=None,
                 artefacts: dict[str, Any] | None = None, calibration: Calibration | None = None) -> None:
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
        self._support: CellSupport | None = None
        self.posterior_config = default_posterior_config(config)
        self.calibration = calibration or Calibration()
        self._backbone_source: str | None = None
        self.artefacts = Artefacts(check=lambda name, value: placers.artefacts()[name].check(self, value))
        for name, value in {**(artefacts or {}), **({"refiner": refiner} if refiner is not None else {})}.items():
            self.attach(name, value)

    # ----------------------------------------------------------------- folders
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None, *,
                        backbone=None, gallery=None) -> Geolocator:
        """Load a model folder written by :meth:`save_pretrained` / ``pigeon train``, a bundled model name of
        :data:`PRETRAINED` (e.g. ``"demo"``, ``"geoclip"``), or a model-hub id ``owner/name``. The artefacts of the
        placing methods are loaded from their sub-folders: those ``config.json`` ``"stages"`` lists (a folder
        without that entry: every known sub-folder there is).

        Args:
            path: the folder, bundled name or hub id.
            device: where the head (and the backbone, when loaded) run.
            backbone: the model's backbone from elsewhere: a name such as ``"clip:LOCAL_DIR"`` (the same network,
                e.g. downloaded where the hub is reachable) or a loaded :class:`pigeon.backbones.Backbone`.
            gallery: for the ``geoclip`` method, a ``lat,lon`` file (or an (N, 2) array) of the points to place
                guesses on, instead of the folder's gallery.
        """
        from pigeon.cells import GeoCells

        root = resolve_model_path(path)
        config = read_json(root / CONFIG, hint=f"{root} is not a complete model folder; {_RETRAIN}")
        if not (root / CELLS).exists():
            raise ArtifactNotFoundError(root / CELLS, f"the model folder is incomplete; {_RETRAIN}")
        stages = config.get("stages")
        loaders = {name: partial(artefact.load, root / name) for name, artefact in placers.artefacts().items()
                   if (name in stages if stages is not None else (root / name).is_dir())}
        head, artefacts = _load_head(root, config, loaders)
        standardiser = Standardiser.load(root / STANDARDISER) if head.regression is not None else None
        weights = None
        if config.get("backbone_weights"):
            weights = read_tensors(root / BACKBONE_WEIGHTS, f"the fine-tuned backbone is damaged or missing; {_RETRAIN}")
        geo = cls(head, GeoCells.load(root / CELLS), config, standardiser, backbone_weights=weights,
                  artefacts=artefacts)
        for name, load in loaders.items():  # the others are loaded when a method first reads them
            if name not in artefacts:
                geo.artefacts.defer(name, load)
        geo.calibration = load_calibration(root / CALIBRATION, geo)  # fitted for the folder's own gallery
        if backbone is not None:
            geo.use_backbone(backbone)
        if gallery is not None:
            from pigeon.model.geoclip import use_gallery

            use_gallery(geo, gallery)
        if device is not None:
            geo.to(device)
        return geo

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``config.json``, ``head.safetensors``, ``cells/``, ``standardiser.json``, one sub-folder per
        artefact (``refiner/``), the model card ``README.md`` and ``meta.json``."""
        from safetensors.torch import save_file

        from pigeon.model._card import write_model_card

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        trained = isinstance(self.head, GeolocatorHead)  # else the head is made of an artefact (geoclip's gallery)
        self.config["head"] = self.head.cfg.to_dict() if trained else self.head.config_entry()
        self.config["versions"] = versions()
        self.config["stages"] = self.stages
        self.config["methods"] = self.methods
        if trained:
            with atomic_path(root / HEAD) as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(tmp))
        self.cells.save(root / CELLS)
        if self.standardiser is not None:
            self.standardiser.save(root / STANDARDISER)
        self.config["backbone_weights"] = BACKBONE_WEIGHTS if self.backbone_weights else None
        self.config["backbone_id"] = self.backbone_id
        if self.backbone_weights:
            with atomic_path(root / BACKBONE_WEIGHTS) as tmp:
                save_file({k: v.contiguous() for k, v in self.backbone_weights.items()}, str(tmp))
        known = placers.artefacts()
        for name, value in self.artefacts.items():
            known[name].save(value, root / name)
        self._save_posterior(root)
        write_json(root / CONFIG, self.config)
        write_json(root / META, provenance("model", {k: v for k, v in self.config.items() if k != "versions"}))
        write_model_card(self, root / MODEL_CARD)
        return root

    def _save_posterior(self, root: Path) -> None:
        """The posterior's settings in ``config.json`` and its calibration in ``calibration.json`` (none: no file)."""
        cal = self.calibration
        self.config["posterior"] = self.posterior_config.to_dict()
        self.config["calibration"] = None if cal.identity else {
            "file": CALIBRATION, "temperature": cal.temperature, "sharpen_temperature": cal.sharpen_temperature,
            "flatten": cal.flatten, "validation": cal.validation}
        (root / CALIBRATION).unlink(missing_ok=True)
        if not cal.identity:
            write_json(root / CALIBRATION, cal.to_dict())

    def record_evaluation(self, entries: list[dict[str, Any]], path: str | os.PathLike) -> None:
        """Record test metrics (``[{"split", "method", "metrics", "note"}]``) in the model folder ``path``:
        ``config.json`` and the model card say what the model was measured on."""
        from pigeon.model._card import write_model_card

        self.config["evaluation"] = entries
        write_json(Path(path) / CONFIG, self.config)
        write_model_card(self, Path(path) / MODEL_CARD)

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
    def stages(self) -> list[str]:
        """The prediction stages this model has: ``head`` always, then each artefact it holds (``refiner``)."""
        return ["head"] + [name for name in placers.artefacts() if name in self.artefacts]

    @property
    def methods(self) -> list[str]:
        """The placing methods this model can use (those whose artefacts it holds), in registry order."""
        return placers.methods_with(self.artefacts)

    @property
    def backbone_id(self) -> str:
        """The backbone's registry name, plus a digest of the fine-tuned weights when there are any: embeddings
        are interchangeable only between equal ids."""
        name = str(self.config.get("backbone"))
        if not self.backbone_weights:
            return name
        digest = hashlib.sha256()
        for key in sorted(self.backbone_weights):
            digest.update(key.encode())
            digest.update(self.backbone_weights[key].detach().cpu().contiguous().numpy().tobytes())
        return f"{name}@finetuned-{digest.hexdigest()[:12]}"

    def attach(self, name: str, value: Any) -> None:
        """Attach the artefact ``name`` of the placing methods, checking it fits this model (backbone, cells...)."""
        known = placers.artefacts()
        if name not in known:
            from pigeon.errors import UnknownNameError

            raise UnknownNameError("artefact", name, known, hint="no registered placing method needs it")
        known[name].check(self, value)
        self.artefacts[name] = value
        self._support = None

    def set_refiner(self, refiner) -> None:
        """Attach a :class:`pigeon.refine.Refiner`, checking it fits this model (backbone, size, cells)."""
        self.attach("refiner", refiner)

    @property
    def refiner(self):
        """The retrieval refiner (:class:`pigeon.refine.Refiner`) of ``refine`` and ``knn``, or None."""
        return self.artefacts.get("refiner")

    @refiner.setter
    def refiner(self, refiner) -> None:
        if refiner is None:
            self.artefacts.pop("refiner", None)
            self._support = None
        else:
            self.set_refiner(refiner)

    def use_backbone(self, backbone) -> None:
        """Take the model's backbone from elsewhere: a name (``"clip:LOCAL_DIR"``: the same network from a local
        folder) loaded on first use, or a loaded :class:`pigeon.backbones.Backbone`. The model's identity
        (:attr:`backbone_id`, what embeddings stores are checked against) stays its own."""
        check = getattr(self.head, "check_backbone", None)  # a head that needs one particular backbone
        backbone = check(backbone) if check is not None else backbone
        if isinstance(backbone, str):
            self._backbone_source, self._backbone = backbone, None
        else:
            self._backbone_source, self._backbone = None, backbone
            self._check_backbone(backbone)

    @property
    def support(self) -> CellSupport:
        """Where each cell's mass lies: the refiner's gallery locations (a bounded sample per cell), or the cell
        centroids when there is no refiner (made on first use; the cells' areas only when first needed)."""
        if self._support is None:
            attributes = self.cells.attributes
            gallery = self.refiner.gallery if self.refiner is not None else None
            self._support = CellSupport.build(
                self.cells.centroids, lambda: self.cells.areas_km2,
                None if gallery is None else gallery[["lat", "lon"]].to_numpy(np.float64),
                None if gallery is None else gallery["cell"].to_numpy(np.int64),
                self.posterior_config.points_per_cell,
                prior=attributes["n_train"].to_numpy(np.float64) if "n_train" in attributes.columns else None)
        return self._support

    def calibration_fingerprint(self) -> dict[str, Any]:
        """What a calibration depends on: the head's weights and the refiner's gallery (a refit is due when they
        change)."""
        digest = hashlib.sha256()
        for key, value in sorted(self.head.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        refiner = None if self.refiner is None else {"gallery": len(self.refiner), "clusters": len(self.refiner.clusters),
                                                     "metric": self.refiner.config.metric}
        return {"head": digest.hexdigest()[:16], "refiner": refiner}

    @property
    def backbone(self):
        """The image backbone named in ``config.json`` (loaded on first use)."""
        if self._backbone is None:
            from pigeon.backbones import load

            source = self._backbone_source or self.config["backbone"]
            try:
                self._backbone = load(source, device=self._device)
            except ArtifactNotFoundError as exc:
                if not self.config.get("backbone_hint"):
                    raise
                raise ArtifactNotFoundError(source, self.config["backbone_hint"]) from exc
            self._check_backbone(self._backbone)
        return self._backbone

    def _check_backbone(self, backbone) -> None:
        """Lay the fine-tuned weights over ``backbone`` and check its embedding size."""
        if self.backbone_weights:
            unexpected = backbone.load_state_dict(self.backbone_weights, strict=False).unexpected_keys
            if unexpected:
                raise InputError(f"{BACKBONE_WEIGHTS} does not fit backbone {self.config['backbone']!r} "
                                 f"(e.g. {unexpected[0]!r}); " + _RETRAIN)
        if backbone.embed_dim != self.head.cfg.in_dim:
            raise InputError(f"backbone {backbone.name!r} gives {backbone.embed_dim}-d embeddings but the head "
                             f"expects {self.head.cfg.in_dim}; " + _RETRAIN)

    @property
    def _device(self) -> torch.device:
        return next(self.head.buffers()).device

    @property
    def view_rule(self) -> str:
        """How the views of a location are combined (:mod:`pigeon.model._views`)."""
        return self.config.get("train", {}).get("views", "mean")

    # ------------------------------------------------------------- prediction
    @torch.no_grad()
    def forward_embeddings(self, X: np.ndarray, batch_size: int = 4096) -> dict[str, np.ndarray]:
        """The head stage: raw outputs for embeddings ``X`` (N, D): ``probs`` (N, C) and the auxiliary outputs.

        ``climate``/``month`` are (N, K) probabilities, ``regression`` (N, R) values in the columns' units.
        """
        X = self._check_embeddings(X)
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

    def check_answer(self, guess: str | None = None, credible: float | None = None, p_within: bool | None = None) -> None:
        """Refuse an unknown objective, a credible mass outside (0, 1), or P(within r) asked of a model without a
        gallery, before any work is done."""
        from pigeon.posterior import check_credible, check_guess

        if guess is not None:
            check_guess(guess)
        if credible is not None:
            check_credible(credible)
        if p_within:
            self.support.require_gallery()

    def resolve_method(self, method: str | None) -> str:
        """The placing method to use: ``None`` -> the model's default (``refine`` with a refiner, else ``cell``);
        a name is checked against the registry (unknown: the closest names) and against what the model holds."""
        if method is None:
            return placers.default_method(self.artefacts)
        placer = placers.get_placer(method)
        missing = [a for a in placer.needs if a.name not in self.artefacts]
        if missing:
            raise InputError(f"method {method!r} needs a {missing[0].name} and this model has none; build one with "
                             f"'{missing[0].build_hint}'")
        return method

    def predict_embeddings(self, X: np.ndarray, top_k: int = DEFAULT_TOP_K, method: str | None = None,
                           guess: str | None = None, credible: float | None = None) -> list[Prediction]:
        """One :class:`Prediction` per row of ``X`` (N, D) (view-averaged embeddings).

        Args:
            X: embeddings made with the model's backbone.
            top_k: candidates per prediction.
            method: a placing method of :data:`pigeon.model.placers.METHODS` the model can use (see
                :attr:`methods`): ``"cell"`` (the top cell's centroid), ``"refine"`` (retrieval refinement inside
                the top cells), ``"knn"`` (the nearest gallery image)...; default: :meth:`resolve_method`.
            guess: the objective (:data:`pigeon.posterior.GUESSES`): ``"mode"`` (the placer's answer),
                ``"distance"`` (least expected km) or ``"score"`` (most expected GeoGuessr points); default: the
                model's (``config.json`` ``posterior.guess``).
            credible: mass of the credible region (default: the model's, 0.9).
        """
        cfg = self.posterior_config
        guess, credible = cfg.guess if guess is None else guess, cfg.credible if credible is None else credible
        self.check_answer(guess, credible)
        out, placement = self._forward_and_place(X, top_k, method)
        answers = self.answer(self._check_embeddings(X), placement, guess, credible, top_k)
        aux = [self._aux(out, n) for n in range(len(placement.cells))]
        return build_predictions(placement, answers, self.cells, aux)

    def answer(self, X: np.ndarray, placement: Placement, guess: str, credible: float, top_k: int) -> Answers:
        """The posterior stage: the calibrated cell masses of the head's probabilities (with the retrieval scores of
        the placer, or of the refiner when the placer did not score), the guess for ``guess``, what the posterior
        says of it, and ``top_k`` candidates."""
        retrieval = placement.retrieval or self._retrieval(X, placement.cell_probs)
        similarity = None if retrieval is None else np.max(retrieval[1], axis=1, initial=-np.inf)
        masses, unseen = self.calibration.masses(placement.cell_probs, self.support.prior,
                                                 *(retrieval or (None, None)), similarity=similarity)
        posterior = Posterior(masses, self.support, self.posterior_config)
        return Answers(posterior, placement, guess, credible, min(top_k, self.n_cells), unseen, self.calibration)

    def _retrieval(self, X: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The refiner's candidate cells (the head's top K) and each one's best-cluster similarity to the query
        (None without a refiner): the unseen score and the sharpening read them."""
        if self.refiner is None:
            return None
        cands = top_cells(probs, min(self.refiner.config.top_k, self.n_cells))
        return cands, self.refiner.similarities(X, cands)

    def place_embeddings(self, X: np.ndarray, top_k: int = DEFAULT_TOP_K, method: str | None = None) -> Placement:
        """The placer stage as arrays: the :class:`Placement` of each row of ``X`` (candidates best first, their
        locations and the placer's probabilities, and the head's probability of every cell in ``cell_probs``)."""
        return self._forward_and_place(X, top_k, method)[1]

    def _forward_and_place(self, X: np.ndarray, top_k: int,
                           method: str | None) -> tuple[dict[str, np.ndarray], Placement]:
        """The head's outputs and the chosen placer's :class:`Placement`."""
        if top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        method = self.resolve_method(method)
        X = self._check_embeddings(X)
        out = self.forward_embeddings(X)
        probs = out["probs"]
        placement = placers.get_placer(method).place(self, X, probs, min(top_k, self.n_cells))
        return out, dataclasses.replace(placement, method=method, cell_probs=probs)

    def _check_embeddings(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.head.cfg.in_dim:
            raise InputError(f"embeddings must have shape (N, {self.head.cfg.in_dim}), got {X.shape}; "
                             "embed with the model's backbone " + repr(self.config.get("backbone")))
        return X

    def _aux(self, out: dict[str, np.ndarray], n: int) -> dict[str, Any]:
        aux: dict[str, Any] = {}
        if "climate" in out:
            from pigeon.koppen import KOPPEN_NAMES

            k = int(out["climate"][n].argmax())
            code = self.config["climate_classes"][k]
            aux["climate"] = {"class": code, "name": KOPPEN_NAMES.get(code), "prob": float(out["climate"][n, k])}
        if "month" in out:
            k = int(out["month"][n].argmax())
            aux["month"] = {"month": k + 1, "prob": float(out["month"][n, k])}
        if "regression" in out:
            aux.update({c: float(v) for c, v in zip(self.standardiser.columns, out["regression"][n])})
        return aux

    def embed(self, images: ImageLike | Sequence[ImageLike | Sequence[ImageLike]],
              batch_size: int = 32) -> np.ndarray:
        """Embeddings (N, D) of N locations; a location given as several views gets their pooled embedding.

        Args:
            images: a path or PIL image (one location), or a list whose items are each a path/PIL image
                (one location) or a list of paths/PIL images (the views of one location).
            batch_size: images per forward pass.

        Raises:
            InputError: an image cannot be read (see :meth:`predict` with ``return_errors=True`` to skip it).
        """
        X, _, _ = self.embed_locations(_locations(images), batch_size, skip=False)
        return X

    def embed_locations(self, locations: list[list[ImageLike]], batch_size: int = 32,
                        skip: bool = False) -> tuple[np.ndarray, np.ndarray, list[tuple[int, Any, PigeonError]]]:
        """Pooled embeddings of the locations (each a list of views) that have a readable view.

        Returns:
            ``(X, ok, failures)``: X (n_ok, D) for the locations where ``ok`` (N,) is True, and one
            ``(location, image, error)`` per unreadable view. Without ``skip`` the first unreadable view raises.
        """
        pixels, owner, failures = [], [], []
        for i, views in enumerate(locations):
            for view in select_views(views, self.view_rule):
                try:
                    pixels.append(self.backbone.preprocess(view))
                    owner.append(i)
                except PigeonError as exc:
                    if not skip:
                        raise
                    failures.append((i, view, exc))
        owner_arr = np.asarray(owner, np.int64)
        ok = np.zeros(len(locations), bool)
        ok[owner_arr] = True
        if not len(pixels):
            return np.zeros((0, self.head.cfg.in_dim), np.float32), ok, failures
        emb = np.concatenate([self.backbone.embed_pixels(torch.stack(pixels[i:i + batch_size]))
                              for i in range(0, len(pixels), batch_size)])
        X = np.stack([pool_views(emb[owner_arr == i].astype(np.float64)) for i in np.flatnonzero(ok)])
        return X.astype(np.float32), ok, failures

    def predict(self, images: ImageLike | Sequence[ImageLike | Sequence[ImageLike]], top_k: int = DEFAULT_TOP_K,
                method: str | None = None, *, guess: str | None = None, credible: float | None = None,
                return_errors: bool = False, batch_size: int = 32) -> list[Prediction | PigeonError]:
        """Geolocate images: one :class:`Prediction` per location (see :meth:`embed` for the input forms).

        Args:
            images: the locations (see :meth:`embed`).
            top_k: candidates per prediction.
            method: see :meth:`predict_embeddings` (default: refine when the model has a refiner).
            guess, credible: the objective and the credible mass (see :meth:`predict_embeddings`).
            return_errors: leave unreadable images out, and give a location none of whose images can be read
                its error (a :class:`pigeon.errors.PigeonError`) in place of a prediction, as
                ``asyncio.gather(return_exceptions=True)`` does; by default the first unreadable image raises.
            batch_size: images per forward pass.
        """
        locations = _locations(images)
        method = self.resolve_method(method)
        self.check_answer(guess, credible)
        X, ok, failures = self.embed_locations(locations, batch_size, skip=return_errors)
        preds = iter(self.predict_embeddings(X, top_k=top_k, method=method, guess=guess, credible=credible)
                     if len(X) else [])
        errors = {i: exc for i, _, exc in failures}
        return [next(preds) if ok[i] else errors[i] for i in range(len(locations))]


def load_calibration(path: Path, geo: Geolocator) -> Calibration:
    """The calibration of a model folder: none (the head as it is) when the file is absent or was fitted for
    another head or gallery (a warning says so, and how to refit)."""
    if not path.is_file():
        return Calibration()
    calibration = Calibration.from_dict(read_json(path, hint="refit it with 'pigeon calibrate MODEL --manifest M'"))
    if calibration.fitted_on and calibration.fitted_on != geo.calibration_fingerprint():
        import warnings

        warnings.warn(f"{path} was fitted for another head or refiner and is ignored; refit it with "
                      "'pigeon calibrate MODEL --manifest MANIFEST --embeddings EMB'", stacklevel=3)
        return Calibration()
    return calibration


def _load_head(root: Path, config: dict[str, Any], loaders: dict[str, Callable[[], Any]]
               ) -> tuple[Any, dict[str, Any]]:
    """The head stage of a model folder and the artefacts it is made of: the trained :class:`GeolocatorHead`
    (``head.safetensors``) and none, or a head made of an artefact (``"kind": "geoclip"``: cell probabilities from
    the geoclip gallery, loaded now)."""
    entry = config.get("head") or {}
    if entry.get("kind") == "geoclip":
        from pigeon.model.geoclip import GalleryHead

        if "geoclip" not in loaders:
            raise ArtifactNotFoundError(root / "geoclip", "the model's head is its geoclip gallery; the folder is "
                                        "incomplete")
        gallery = loaders["geoclip"]()
        return GalleryHead(gallery, int(entry["n_cells"])), {"geoclip": gallery}
    if not (root / HEAD).exists():
        raise ArtifactNotFoundError(root / HEAD, f"the model folder is incomplete; {_RETRAIN}")
    try:
        head = GeolocatorHead(HeadConfig.from_dict(entry))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{root / CONFIG} has no valid 'head' entry ({exc}); {_RETRAIN}") from None
    try:
        head.load_state_dict(read_tensors(root / HEAD, _RETRAIN))
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"{root / HEAD} does not match config.json ({str(exc).splitlines()[0][:120]}); "
                         + _RETRAIN) from None
    return head, {}


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
