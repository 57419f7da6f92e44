"""``geoclip``: GeoCLIP-style continuous retrieval. Candidates are the most probable points of a GPS gallery.

The artefact (:class:`pigeon.model.geoclip.GeoClip`, kept in ``MODEL/geoclip/``) holds a location encoder and an
image projection trained contrastively on the model's training embeddings and locations (or GeoCLIP's published
ones), and a gallery: the training locations by default, or a ``lat,lon`` file.

Probabilities: the gallery softmax ``softmax(scale * cos(image, point))`` over every gallery point, at the
candidates: a distribution over gallery points (the top ``k`` of it; the rest of the mass is on the other points).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pigeon.errors import InputError
from pigeon.model._prediction import Placement
from pigeon.model.geoclip import GeoClip, GeoClipConfig, build_geoclip, load_geoclip, read_gallery, training_pairs
from pigeon.model.placers._registry import Artefact, TrainingData, register_placer

_FIX = "rebuild it with 'pigeon train ... --methods geoclip' for this model"


class GeoClipArtefact(Artefact):
    """The towers and the GPS gallery of the ``geoclip`` method."""

    name = "geoclip"
    description = ("a location encoder and image projection trained contrastively (GeoCLIP-style), over a GPS "
                   "gallery")
    build_hint = "pigeon train MANIFEST --cells CELLS --embeddings EMB -o MODEL --methods refine,geoclip"
    default = False
    #: trained on the engine: every process of a torchrun job builds it (it gathers each step's locations).
    collective = True

    def default_config(self, preset: str | None = None) -> GeoClipConfig:
        return GeoClipConfig()

    def check_config(self, config: GeoClipConfig, n_cells: int) -> None:
        config.validate()
        if config.gallery is not None:
            read_gallery(config.gallery)  # a bad row is an error before any training

    def build(self, geo, data: TrainingData, config: GeoClipConfig | None, show_progress: bool = True) -> GeoClip:
        config = config or self.default_config()
        X, coords, cells, ids = training_pairs(data.X, data.coords, data.cells, data.ids, config.views)
        val = (np.asarray(data.val.X[:]), data.val.coords) if data.val is not None else None
        return build_geoclip(X, coords, cells, config, ids=ids, assign=geo.cells.assign, backbone=geo.backbone_id,
                             val=val, out_dir=data.work_dir / self.name if data.work_dir else None,
                             resume=data.resume)

    def load(self, folder: Path) -> GeoClip:
        return load_geoclip(folder)

    def save(self, value: GeoClip, folder: Path) -> None:
        value.save(folder)

    def check(self, geo, value: GeoClip) -> None:
        if value.in_dim != geo.head.cfg.in_dim:
            raise InputError(f"the geoclip method projects {value.in_dim}-d embeddings but the model's backbone gives "
                             f"{geo.head.cfg.in_dim}-d ones; " + _FIX)
        cells = value.gallery["cell"].to_numpy()
        if len(cells) and (cells.min() < 0 or cells.max() >= geo.n_cells):
            raise InputError(f"the geoclip gallery's cells do not fit the model's {geo.n_cells} cells; " + _FIX)

    def describe(self, value: GeoClip) -> str:
        cfg, fit = value.towers.cfg, value.config.get("fit") or {}
        best = fit.get("best", {})
        trained = (f"; best epoch {best['epoch']}: val median {best['val_median_km']:,.0f} km" if best else "")
        return (f"{len(value):,} gallery points ({value.config.get('gallery', {}).get('source', '?')}); "
                f"{len(cfg.sigmas)} scales {', '.join(f'{s:g}' for s in cfg.sigmas)}, {cfg.dim}-d{trained}")


#: The geoclip artefact.
GEOCLIP = GeoClipArtefact()


@register_placer("geoclip", "the most probable points of a GPS gallery under a GeoCLIP-style location encoder",
                 needs=(GEOCLIP,), preference=50, label="GeoCLIP-style gallery (geoclip)")
def place_geoclip(geo, X: np.ndarray, probs: np.ndarray, k: int) -> Placement:
    """The ``k`` most probable gallery points, best first, with their gallery-softmax probabilities."""
    method: GeoClip = geo.artefacts[GEOCLIP.name]
    rows, point_probs = method.top_points(X, k)
    latlon = method.coords[rows]
    return Placement(method.gallery["cell"].to_numpy()[rows], latlon, point_probs.astype(np.float64),
                     np.ones(len(X), bool))
