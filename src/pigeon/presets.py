"""The paper's two set-ups as presets across the pipeline: geocells, training and refinement.

A preset is a set of overrides over each stage's config defaults; the defaults themselves are the street-view
set-up, so every value is written once: the geocell sizes in :data:`pigeon.cells.PRESETS`, the training defaults
in :class:`pigeon.model.TrainConfig`, the refinement defaults in :class:`pigeon.refine.RefineConfig`, and here
only what the photo set-up changes. Explicit options win over a preset (:func:`resolve`).

| | streetview (PIGEON) | photo (PIGEOTTO) |
|---|---|---|
| geocells (training locations per cell) | 30-60 | 1000-2000 |
| label smoothing tau | 75 km | 65 km |
| views per location | 4, averaged | 1 |
| refinement: top-K cells, T, max move | 5, 1.6, 1000 km | 40, 0.6, none |
| location clusters: OPTICS (min_samples, xi) | (3, 0.15) | (100, 0.1) |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pigeon.errors import UnknownNameError

C = TypeVar("C")


@dataclass(frozen=True)
class Preset:
    """Overrides per stage (field name -> value) over the stage config's defaults."""

    description: str
    train: dict[str, Any] = field(default_factory=dict)
    refine: dict[str, Any] = field(default_factory=dict)
    posterior: dict[str, Any] = field(default_factory=dict)


def _photo_train() -> dict[str, Any]:
    from pigeon.model._loss import TAU_PHOTOS_KM

    return {"tau_km": TAU_PHOTOS_KM, "views": "first"}


PRESETS: dict[str, Preset] = {
    "streetview": Preset("PIGEON: ~100k street-view locations, 4-view panoramas (the defaults)"),
    "photo": Preset("PIGEOTTO: millions of single photos (MP-16 / YFCC scale)",
                    train=_photo_train(),
                    refine={"top_k": 40, "temperature": 0.6, "max_move_km": None, "min_samples": 100, "xi": 0.1}),
}
DEFAULT_PRESET = "streetview"


def get_preset(name: str | None) -> Preset:
    """The preset called ``name`` (None: the default, street view)."""
    name = DEFAULT_PRESET if name is None else name
    if name not in PRESETS:
        raise UnknownNameError("preset", name, PRESETS, "pass --preset streetview or --preset photo")
    return PRESETS[name]


def resolve(config_cls: type[C], stage: str, preset: str | None = None, **options: Any) -> C:
    """A stage config: its defaults, then the preset's overrides, then every option that is not None.

    >>> resolve(RefineConfig, "refine", "photo", temperature=1.0).top_k
    40
    """
    overrides = dict(getattr(get_preset(preset), stage))
    overrides.update({k: v for k, v in options.items() if v is not None})
    return dataclasses.replace(config_cls(), **overrides)
