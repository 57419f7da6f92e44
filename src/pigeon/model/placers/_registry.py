"""The placer registry: placing methods by name, like the backbone registry's schemes.

A *placer* turns the head's cell probabilities (and the query embeddings) into a :class:`Placement`: candidates
best first, each with a location and a probability. It registers with :func:`register_placer` under a name, with a
one-line description and what it ``needs``: the :class:`Artefact` objects (a retrieval gallery, a location
encoder...) that are built from training data and kept in the model folder, one sub-folder each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pigeon.errors import InputError, UnknownNameError
from pigeon.model._prediction import Placement

if TYPE_CHECKING:
    from pigeon.model._geolocator import Geolocator

#: ``place(geo, X, probs, k) -> Placement``: X (N, D) embeddings, probs (N, C) the head's, k candidates wanted.
PlaceFn = Callable[["Geolocator", np.ndarray, np.ndarray, int], Placement]


@dataclass(frozen=True)
class TrainingData:
    """What an artefact is built from: the training locations under the model's backbone and view rule.

    Attributes:
        ids: (N,) str row ids.
        X: (N, D) embeddings: an array, or a :class:`pigeon.model.StoreRows` read on demand (``X[:]`` reads all).
        coords: (N, 2) float64 (lat, lon).
        cells: (N,) int, the model's cell of each location.
        rows: the manifest rows (for artefacts that need more columns), or None.
        val: the validation locations, for artefacts that choose an epoch (None: hold some out).
        work_dir: where an artefact that trains keeps its checkpoint and log (``MODEL/<name>/``), or None.
        resume: continue such training from its checkpoint there.
    """

    ids: np.ndarray
    X: Any
    coords: np.ndarray
    cells: np.ndarray
    rows: pd.DataFrame | None = None
    val: TrainingData | None = None
    work_dir: Path | None = None
    resume: bool = False


class Artefact(ABC):
    """Something placers need, built from :class:`TrainingData` and a config, kept in ``MODEL/<name>/``.

    Subclasses set :attr:`name`, :attr:`description` and :attr:`build_hint` and implement :meth:`build`,
    :meth:`load` and :meth:`save`; :meth:`check` refuses a value that does not fit the model.
    """

    #: the sub-folder of the model folder, and the stage name in ``config.json`` ``"stages"``.
    name: str = ""
    #: one line for help texts and the model card.
    description: str = ""
    #: the command that builds it into an existing model folder.
    build_hint: str = ""
    #: built by ``pigeon train`` when no methods are named.
    default: bool = True
    #: built by every process of a torchrun job together (it trains on the engine), not by rank 0 alone.
    collective: bool = False

    def default_config(self, preset: str | None = None) -> Any:
        """The build config when none is given (``preset``: a name of :data:`pigeon.presets.PRESETS`)."""
        return None

    def check_config(self, config: Any, n_cells: int) -> None:
        """Refuse a build config that cannot work with a model of ``n_cells`` cells (before any work)."""

    @abstractmethod
    def build(self, geo: Geolocator, data: TrainingData, config: Any, show_progress: bool = True) -> Any:
        """Build the artefact of ``geo`` from its training data."""

    @abstractmethod
    def load(self, folder: Path) -> Any:
        """Read the artefact from its folder."""

    @abstractmethod
    def save(self, value: Any, folder: Path) -> None:
        """Write the artefact to its folder (atomically, file by file)."""

    def check(self, geo: Geolocator, value: Any) -> None:
        """Raise :class:`InputError` (naming the fix) when ``value`` does not fit ``geo``."""

    def describe(self, value: Any) -> str:
        """One line about a built artefact (the CLI and the model card print it)."""
        return self.description


@dataclass(frozen=True)
class Placer:
    """A registered placing method.

    Attributes:
        name: what ``--method`` / ``method=`` take.
        description: one line for help texts.
        place: ``place(geo, X, probs, k) -> Placement`` (see :data:`PlaceFn`).
        needs: the artefacts the model must hold for this method.
        preference: placers with one are defaults: with no method named, the available one with the lowest
            preference places the guess.
        label: how reports and tables name the method (default: its name).
    """

    name: str
    description: str
    place: PlaceFn
    needs: tuple[Artefact, ...] = ()
    preference: int | None = None
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name


_PLACERS: dict[str, Placer] = {}
#: Every registered placing method by name (a read-only live view of the registry).
METHODS = MappingProxyType(_PLACERS)


def register_placer(name: str, description: str, *, needs: Iterable[Artefact] = (), preference: int | None = None,
                    label: str = "") -> Callable[[PlaceFn], PlaceFn]:
    """Decorator registering ``place(geo, X, probs, k) -> Placement`` as the placing method ``name``.

    >>> @register_placer("centre", "the centre of the top cell's bounding box")
    ... def place_centre(geo, X, probs, k): ...
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise InputError(f"a placing method's name must be letters, digits, '-' or '_', got {name!r}")
    needs = tuple(needs)
    for artefact in needs:
        known = artefacts().get(artefact.name)
        if known is not None and known is not artefact:
            raise InputError(f"placer {name!r}: another artefact is already called {artefact.name!r}")

    def wrap(place: PlaceFn) -> PlaceFn:
        _PLACERS[name] = Placer(name, description, place, needs, preference, label)
        return place
    return wrap


def unregister_placer(name: str) -> None:
    """Remove a placing method (tests and plugins that clean up after themselves)."""
    _PLACERS.pop(name, None)


def get_placer(name: str) -> Placer:
    """The placer called ``name``; an unknown name is a one-line error with the closest names."""
    if name not in _PLACERS:
        raise UnknownNameError("placing method", name, _PLACERS, hint="see 'pigeon predict --help'")
    return _PLACERS[name]


def artefacts() -> dict[str, Artefact]:
    """Every artefact some registered placer needs, by name, in registration order."""
    return {a.name: a for p in _PLACERS.values() for a in p.needs}


def methods_with(available: Iterable[str]) -> list[str]:
    """The placing methods whose every artefact is among ``available`` (names), in registration order."""
    have = set(available)
    return [p.name for p in _PLACERS.values() if all(a.name in have for a in p.needs)]


def default_method(available: Iterable[str]) -> str:
    """The method used when none is named: the usable placer with the lowest preference."""
    usable = [_PLACERS[m] for m in methods_with(available) if _PLACERS[m].preference is not None]
    if not usable:
        raise InputError("no default placing method is registered; name one with --method")
    return min(usable, key=lambda p: p.preference).name


def artefacts_for(methods: Iterable[str]) -> dict[str, Artefact]:
    """The artefacts that the named methods need (checked names), by name."""
    return {a.name: a for m in methods for a in get_placer(m).needs}


def default_artefacts() -> dict[str, Artefact]:
    """The artefacts ``pigeon train`` builds when no methods are named."""
    return {name: a for name, a in artefacts().items() if a.default}


def methods_help() -> str:
    """``name: description`` of every method, for help texts."""
    return "; ".join(f"{p.name}: {p.description}" for p in _PLACERS.values())
