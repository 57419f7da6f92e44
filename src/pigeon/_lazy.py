"""Lazy package exports: ``from pigeon.model import Geolocator`` imports only the module that defines it.

A package lists ``name -> submodule`` and gets a module ``__getattr__`` (PEP 562) that imports the submodule on
first use, so ``pigeon --help`` and ``pigeon predict`` do not pay for training code, geopandas or the engine.
The dependency graph is the same as with eager imports (no new edge, no cycle hidden here), only later.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``name`` lives in module ``exports[name]``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(importlib.import_module(package), name, value)  # later look-ups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__


def exports_of(modules: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """``{"pigeon.model._fit": ("fit_head", ...)}`` -> ``{"fit_head": "pigeon.model._fit", ...}``."""
    return {name: module for module, names in modules.items() for name in names}
