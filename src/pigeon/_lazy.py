"""Package namespaces that import their modules on first use, so that a light module (a config, a constant) can
be imported without loading its stage's heavy dependencies (torch, geopandas, FAISS)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[Callable, Callable, list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` of a package whose public names live in its modules.

    Args:
        package: the package's ``__name__``.
        exports: module (relative to the package, e.g. ``"_fit"``, or absolute ``"pigeon._io"``) -> the names it
            gives the package.

    >>> __getattr__, __dir__, __all__ = lazy_exports(__name__, {"_config": ("TrainConfig",), "_train": ("train",)})
    """
    where = {name: (module if module.startswith("pigeon") else f"{package}.{module}")
             for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted(set(where) | set(vars(sys.modules[package])))

    return __getattr__, __dir__, sorted(where)
