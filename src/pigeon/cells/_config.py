"""Size presets and OPTICS parameter rounds of the paper's two geocell set-ups."""

from __future__ import annotations

from dataclasses import dataclass

#: OPTICS ``(min_samples, xi)`` rounds for street-view-sized data (PIGEON, ~100k locations).
OPTICS_PARAMS_STREETVIEW: tuple[tuple[int, float], ...] = ((8, 0.05), (10, 0.025), (15, 0.015))
#: OPTICS ``(min_samples, xi)`` rounds for millions of photos (PIGEOTTO, MP-16 / YFCC).
OPTICS_PARAMS_PHOTO: tuple[tuple[int, float], ...] = ((300, 0.05), (400, 0.005), (1000, 0.0001))


#: How semantic cells above ``max_size`` are split: ``bounded`` (the paper's OPTICS rounds, then median cuts of every
#: cell still above ``max_size``, so cells keep their bounds) or ``paper`` (the OPTICS rounds alone, which leave a
#: cell above ``max_size`` when OPTICS finds no admissible split).
RULES = ("bounded", "paper")


@dataclass(frozen=True)
class CellPreset:
    """Cell sizes (training points per cell), the OPTICS rounds that split large cells and the split rules."""

    min_size: int
    max_size: int
    optics_params: tuple[tuple[int, float], ...]
    rules: str = "bounded"


#: ``streetview``: the paper's 30/60 for ~100k street-view locations (the default);
#: ``photo``: 1000/2000 for millions of photos (PIGEOTTO).
PRESETS: dict[str, CellPreset] = {
    "streetview": CellPreset(30, 60, OPTICS_PARAMS_STREETVIEW),
    "photo": CellPreset(1000, 2000, OPTICS_PARAMS_PHOTO),
}
