"""``Artefacts``: a model's placing-method artefacts by name, those of a model folder loaded when first read.

A prediction with the ``refine`` method never reads the ``geoclip`` artefact, so ``Geolocator.from_pretrained``
defers every folder's load (and its check against the model) to the first read of the entry; iterating over the
values (saving the folder, the model card) reads them all. Names are known at once: ``"geoclip" in artefacts``,
``Geolocator.methods`` and ``.stages`` load nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any


class _Deferred:
    """An entry not read yet: how to load it."""

    __slots__ = ("load",)

    def __init__(self, load: Callable[[], Any]) -> None:
        self.load = load


class Artefacts(MutableMapping[str, Any]):
    """Artefacts by name; an entry set with :meth:`defer` is loaded, then given to ``check``, on its first read.

    Args:
        check: ``check(name, value)`` raises when a loaded value does not fit the model.
    """

    def __init__(self, check: Callable[[str, Any], None]) -> None:
        self._items: dict[str, Any] = {}
        self._check = check

    def defer(self, name: str, load: Callable[[], Any]) -> None:
        """Hold ``name`` without loading it: ``load()`` gives its value when it is first read."""
        self._items[name] = _Deferred(load)

    def is_loaded(self, name: str) -> bool:
        """Whether ``name`` is held and already read (or was set directly)."""
        return name in self._items and not isinstance(self._items[name], _Deferred)

    def __getitem__(self, name: str) -> Any:
        value = self._items[name]
        if isinstance(value, _Deferred):
            loaded = value.load()
            self._check(name, loaded)
            self._items[name] = value = loaded
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self._items[name] = value

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        state = {name: "loaded" if self.is_loaded(name) else "not read yet" for name in self._items}
        return f"Artefacts({state})"
