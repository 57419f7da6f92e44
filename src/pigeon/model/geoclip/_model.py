"""The geoclip method's artefact: the two towers, a GPS gallery and its features, saved in ``MODEL/geoclip/``.

Files: ``config.json`` (tower shapes, training settings, backbone, where the weights and the gallery come from),
``weights.safetensors`` (both towers and the temperature), ``gallery.parquet`` (``lat``, ``lon``, ``cell`` of every
gallery point, and ``id`` for training locations), ``gallery_features.safetensors`` (their unit features, so that
loading needs no encoding) and ``meta.json``. A folder may instead name GeoCLIP's published weights and gallery in
the ``geoclip`` package (see :mod:`pigeon.model.geoclip._published`); their features are then cached (see
:func:`feature_cache_dir`). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pigeon._io import atomic_path, provenance, read_json, read_tensors, write_json, write_table
from pigeon.errors import InputError
from pigeon.model.geoclip._config import EncoderConfig
from pigeon.model.geoclip._encoder import GeoClipTowers
from pigeon.model.geoclip._gallery import cell_mass, encode_points, top_points

CONFIG, WEIGHTS, GALLERY, FEATURES, META = (
    "config.json", "weights.safetensors", "gallery.parquet", "gallery_features.safetensors", "meta.json")
#: Environment variable naming the folder where gallery features of published galleries are cached.
CACHE_ENV = "PIGEON_CACHE_DIR"
_REBUILD = "rebuild it with 'pigeon train ... --methods geoclip'"


def feature_cache_dir() -> Path:
    """Where encoded galleries are cached: ``$PIGEON_CACHE_DIR``, else ``$XDG_CACHE_HOME/pigeon``, else
    ``~/.cache/pigeon``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pigeon"


class GeoClip:
    """GeoCLIP-style continuous retrieval: a query's posterior over the points of a GPS gallery.

    Args:
        towers: the trained :class:`GeoClipTowers`.
        gallery: ``lat``, ``lon``, ``cell`` (and ``id``) of each gallery point.
        config: what :meth:`save` writes to ``config.json`` (``backbone``, ``train``, ``gallery``, ``weights``...).
        features: (G, dim) unit features of the gallery (None: encoded on first use, or read from the cache).
    """

    def __init__(self, towers: GeoClipTowers, gallery: pd.DataFrame, config: dict[str, Any],
                 features: torch.Tensor | None = None) -> None:
        self.towers = towers.eval()
        self.gallery = gallery.reset_index(drop=True)
        self.config = config
        self._features = features
        self._coords = self.gallery[["lat", "lon"]].to_numpy(np.float64)
        self._cells = torch.from_numpy(self.gallery["cell"].to_numpy(np.int64))

    def __len__(self) -> int:
        return len(self.gallery)

    @property
    def in_dim(self) -> int:
        """Size of the backbone embeddings it projects."""
        return self.towers.image.in_dim

    @property
    def backbone(self) -> str | None:
        return self.config.get("backbone")

    @property
    def coords(self) -> np.ndarray:
        """(G, 2) float64 (lat, lon) of the gallery points."""
        return self._coords

    @property
    def features(self) -> torch.Tensor:
        """(G, dim) unit location features of the gallery (encoded, or read from the cache, once)."""
        if self._features is None:
            self._features = self._cached_features()
        if self._features.device != self.device:
            self._features = self._features.to(self.device)
        return self._features

    @property
    def device(self) -> torch.device:
        return self.towers.logit_scale.device

    def to(self, device: str | torch.device) -> GeoClip:
        self.towers.to(device)
        return self

    @property
    def temperature(self) -> float:
        """The softmax scale ``exp(logit_scale)`` of the gallery posterior."""
        return float(self.towers.scale().detach())

    @torch.no_grad()
    def image_features(self, X: np.ndarray) -> torch.Tensor:
        """(N, D) backbone embeddings -> (N, dim) unit image features on the towers' device."""
        return self.towers.image_features(torch.as_tensor(np.asarray(X, np.float32), device=self.device))

    def top_points(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable gallery points of each query: ``rows`` (N, k) int64 and ``probs`` (N, k),
        the gallery softmax ``softmax(scale * cos(image, point))`` at those points."""
        return top_points(self.image_features(X), self.features, self.temperature, min(k, len(self)))

    def cell_probs(self, X: np.ndarray, n_cells: int) -> torch.Tensor:
        """(N, C) posterior mass of each cell under the gallery softmax (the points of a cell summed)."""
        return cell_mass(self.image_features(X), self.features, self.temperature, self._cells, n_cells)

    def with_gallery(self, gallery: pd.DataFrame, source: str) -> GeoClip:
        """The same towers over another gallery (``lat``, ``lon``, ``cell``); its features are encoded on first use."""
        config = {**self.config, "gallery": {"source": source, "n_points": len(gallery)}}
        return GeoClip(self.towers, gallery, config)

    # ------------------------------------------------------------- files
    def save(self, folder: str | os.PathLike) -> Path:
        """Write the artefact (weights, gallery, its features, config, provenance) to ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.towers.state_dict().items()}
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp))
        write_table(self.gallery, folder / GALLERY)
        with atomic_path(folder / FEATURES) as tmp:
            save_file({"features": self.features.detach().cpu().contiguous()}, str(tmp))
        config = {**self.config, "kind": "geoclip", "encoder": self.towers.cfg.to_dict(), "in_dim": self.in_dim,
                  "weights": WEIGHTS}
        write_json(folder / CONFIG, config)
        write_json(folder / META, provenance("geoclip", {k: v for k, v in config.items() if k != "train_history"}))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> GeoClip:
        """Read an artefact written by :meth:`save` (:func:`pigeon.model.geoclip.load_geoclip` also reads one
        naming GeoCLIP's published files)."""
        from pigeon._io import read_table

        folder = Path(folder)
        config = read_config(folder)
        if is_published(config):
            raise InputError(f"{folder} names GeoCLIP's published files instead of holding weights; read it with "
                             "pigeon.model.geoclip.load_geoclip")
        towers = towers_from(config, _load_weights(folder / WEIGHTS))
        gallery = read_table(folder / GALLERY, "gallery")
        features = None
        if (folder / FEATURES).is_file():
            features = read_tensors(folder / FEATURES, _REBUILD).get("features")
            if features is None or features.shape != (len(gallery), towers.cfg.dim):
                features = None  # written for another gallery: encode again
        return cls(towers, gallery, config, features)

    def _cached_features(self) -> torch.Tensor:
        """Encode the gallery, through the feature cache when the artefact names a published gallery."""
        encode = lambda: encode_points(self.towers.location_features, self._coords, device=self.device)  # noqa: E731
        if "cache_key" not in self.config:
            return encode()
        digest = hashlib.sha256(self.config["cache_key"].encode() + self._coords.tobytes()).hexdigest()[:24]
        path = feature_cache_dir() / "geoclip" / f"gallery-{digest}.safetensors"
        from safetensors.torch import load_file, save_file

        if path.is_file():
            return load_file(str(path))["features"]
        features = encode()
        try:
            with atomic_path(path) as tmp:
                save_file({"features": features.contiguous()}, str(tmp))
        except OSError:  # a read-only cache only costs the encoding next time
            pass
        return features


def read_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a geoclip artefact folder."""
    return read_json(folder / CONFIG, hint=f"the geoclip method's folder is incomplete; {_REBUILD}")


def is_published(config: dict[str, Any]) -> bool:
    """Whether an artefact's config names GeoCLIP's published files (read from its package) instead of weights."""
    return isinstance(config.get("weights"), dict)


def towers_from(config: dict[str, Any], state: dict[str, torch.Tensor]) -> GeoClipTowers:
    """Towers of the shapes in ``config`` holding ``state``; a mismatch is a one-line error."""
    try:
        towers = GeoClipTowers(int(config["in_dim"]), EncoderConfig.from_dict(config["encoder"]))
        towers.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"the geoclip weights do not match their config.json ({reason}); {_REBUILD}") from None
    return towers.eval()


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    return read_tensors(path, f"the geoclip method's weights are damaged or missing; {_REBUILD}")
