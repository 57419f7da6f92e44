"""Help texts that show the library's defaults, read from the config dataclasses (and the presets), so that no
default is typed twice. CLI options of config fields default to unset (None): the library merges what is set over
its defaults (:func:`pigeon.presets.resolve`, :meth:`pigeon._config.JsonConfig.with_options`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pigeon.presets import PRESETS


def default_of(config_cls: type, name: str) -> Any:
    """The default of field ``name`` of a config dataclass."""
    for f in dataclasses.fields(config_cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            break
    raise KeyError(f"{config_cls.__name__} has no field {name!r} with a default")


def show(value: Any) -> str:
    """A default as the help text writes it: ``1e-06``, ``0.1``, ``on``, ``none``, ``0.8,0.1,0.1``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(show(v) for v in value)
    return str(value)


def described(text: str, config_cls: type, name: str, *, stage: str | None = None,
              shown: Callable[[Any], str] = show) -> str:
    """``text`` and the default of ``config_cls.name``, with each preset's value where a preset changes it.

    >>> described("Label-smoothing temperature in km.", TrainConfig, "tau_km", stage="train")
    'Label-smoothing temperature in km. [default: 75; --preset photo: 65]'
    """
    parts = [shown(default_of(config_cls, name))]
    if stage is not None:
        parts += [f"--preset {preset}: {shown(getattr(p, stage)[name])}"
                  for preset, p in PRESETS.items() if name in getattr(p, stage)]
    return f"{text} \\[default: {'; '.join(parts)}]"  # \\[: a bracket, not rich markup
