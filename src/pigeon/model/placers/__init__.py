"""Placing methods: how a guess is placed once the head has given its cell probabilities.

>>> from pigeon.model.placers import METHODS
>>> {name: p.description for name, p in METHODS.items()}      # cell, knn, refine (and any plugin)

Each method is one module of this package (imported here, so it registers itself) that calls
:func:`register_placer`; one that needs something built from training data names an :class:`Artefact`, which
the model builds (``pigeon train --methods``), saves and loads in its own sub-folder of the model folder. Every
placer returns a :class:`pigeon.model.Placement`: candidates best first, each with a location and a probability.
"""

import importlib
import pkgutil

from pigeon.model.placers._registry import (
    METHODS, Artefact, PlaceFn, Placer, TrainingData, artefacts, artefacts_for, default_artefacts, default_method,
    get_placer, methods_help, methods_with, register_placer, unregister_placer,
)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "METHODS", "Artefact", "PlaceFn", "Placer", "TrainingData", "artefacts", "artefacts_for", "default_artefacts",
    "default_method", "get_placer", "methods_help", "methods_with", "register_placer", "unregister_placer",
]
