"""The paper's two set-ups as presets across the pipeline: geocells, head training, refinement and pretraining.

This is the one preset table. A preset is a set of overrides over each stage's config defaults; the defaults
themselves are the street-view set-up (:data:`DEFAULT_PRESET`), so every value is written once: the street-view
values as the defaults of :class:`pigeon.cells.CellConfig`, :class:`pigeon.model.TrainConfig`,
:class:`pigeon.refine.RefineConfig` and :class:`pigeon.pretrain.PretrainConfig`, and here only what the photo
set-up changes. Explicit options win over a preset, and an option left unset (None) does not count
(:func:`resolve`, the one merge).

| | streetview (PIGEON) | photo (PIGEOTTO) |
|---|---|---|
| geocells (training locations per cell) | 30-60 | 1000-2000 |
| label smoothing tau | 75 km | 65 km |
| views per location | 4, averaged | 1 |
| refinement: top-K cells, T, max move | 5, 1.6, 1000 km | 40, 0.6, none |
| location clusters: OPTICS (min_samples, xi) | (3, 0.15) | (100, 0.1) |
| pretraining: captions, epochs, lr, warm-up share | street view, 20, 1e-6, 0.2 | photo, 4, 5e-7, 0.02 |

This module imports no stage (nor torch): the stages import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pigeon.errors import UnknownNameError

C = TypeVar("C")

#: Haversine label-smoothing temperatures in km: PIGEON (street view) and PIGEOTTO (general photos).
TAU_STREETVIEW_KM = 75.0
TAU_PHOTOS_KM = 65.0
#: OPTICS ``(min_samples, xi)`` rounds that split large geocells: street-view-sized data (PIGEON, ~100k locations)
#: and millions of photos (PIGEOTTO, MP-16 / YFCC).
OPTICS_PARAMS_STREETVIEW: tuple[tuple[int, float], ...] = ((8, 0.05), (10, 0.025), (15, 0.015))
OPTICS_PARAMS_PHOTO: tuple[tuple[int, float], ...] = ((300, 0.05), (400, 0.005), (1000, 0.0001))


@dataclass(frozen=True)
class Preset:
    """One set-up of the paper: overrides per stage (config field -> value) over the stage configs' defaults."""

    paper: str
    description: str
    cells: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    refine: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)


#: Stages a preset sets: the fields of :class:`Preset` after its names.
STAGES = ("cells", "train", "refine", "pretrain")
DEFAULT_PRESET = "streetview"
PRESETS: dict[str, Preset] = {
    DEFAULT_PRESET: Preset("PIGEON", "~100k street-view locations, 4-view panoramas (the defaults)"),
    "photo": Preset(
        "PIGEOTTO", "millions of single photos (MP-16 / YFCC scale)",
        cells={"min_size": 1000, "max_size": 2000, "optics_params": OPTICS_PARAMS_PHOTO},
        train={"tau_km": TAU_PHOTOS_KM, "views": "first"},
        refine={"top_k": 40, "temperature": 0.6, "max_move_km": None, "min_samples": 100, "xi": 0.1},
        # per-device batch 32 with 8 accumulation steps in both set-ups (the defaults)
        pretrain={"caption_style": "photo", "epochs": 4, "lr": 5e-7, "warmup_ratio": 0.02},
    ),
}


def get_preset(name: str | None) -> Preset:
    """The preset called ``name`` (None: :data:`DEFAULT_PRESET`)."""
    name = preset_name(name)
    if name not in PRESETS:
        raise UnknownNameError("preset", name, PRESETS, f"pass --preset {' or --preset '.join(PRESETS)}")
    return PRESETS[name]


def preset_name(name: str | None) -> str:
    """``name``, or the default preset's when it is None."""
    return DEFAULT_PRESET if name is None else name


def overrides(stage: str, preset: str | None) -> dict[str, Any]:
    """What ``preset`` changes in ``stage``'s config (empty for a stage presets do not set)."""
    chosen = get_preset(preset)
    return dict(getattr(chosen, stage)) if stage in STAGES else {}


def resolve(config_cls: type[C], stage: str, preset: str | None = None, **options: Any) -> C:
    """A stage config: its defaults, then the preset's overrides, then every option that is set (not None).

    The one merge of the pipeline: ``pigeon cells build``, ``train``, ``refine build``, ``pretrain`` and the
    library functions behind them resolve their configs here (:meth:`pigeon._config.JsonConfig.with_options`).

    >>> resolve(RefineConfig, "refine", "photo", temperature=1.0).top_k
    40
    """
    return config_cls().replace(**overrides(stage, preset)).with_options(**options)


def preset_help() -> str:
    """The ``--preset`` help text: every preset, the default marked."""
    names = [f"{name} ({p.paper}{', the default' if name == DEFAULT_PRESET else ''})" for name, p in PRESETS.items()]
    return f"The paper's set-up: {' or '.join(names)}; the options below override it."
