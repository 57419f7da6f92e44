"""What every config dataclass shares: the JSON round trip (``meta.json`` / ``config.json``) and the one merge of
options over defaults, in which ``None`` means "not set: keep the default".

Torch-free on purpose, like every config module (``engine/_config``, ``cells/_config``, ``refine/_config``,
``pretrain/_config``): the CLI builds its help texts from the configs' fields, and ``pigeon --help`` must not
import torch (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from pigeon.errors import InputError

C = TypeVar("C", bound="JsonConfig")

#: Numeric precisions of training and inference (``OptimConfig.precision``; ``pigeon._device.autocast_dtype``).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def drop_unset(options: dict[str, Any]) -> dict[str, Any]:
    """The options that are set: every one whose value is not None (None means "use the default")."""
    return {k: v for k, v in options.items() if v is not None}


class JsonConfig:
    """Mixin of pigeon's config dataclasses: ``to_dict``, ``from_dict``, ``replace`` and ``with_options``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists); fields marked ``metadata={"secret": True}`` are left out."""
        return {f.name: _lists(getattr(self, f.name)) for f in dataclasses.fields(self) if not f.metadata.get("secret")}

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, so files of other versions load."""
        fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        return cls(**{k: _typed(v, fields[k]) for k, v in d.items() if k in fields})

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (None included); an unknown name is an error naming the known ones."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise InputError(f"unknown {type(self).__name__} setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(known)}")
        return dataclasses.replace(self, **changes)

    def with_options(self: C, **options: Any) -> C:
        """The one merge of options over a config: a copy with every option that is set (not None) changed.

        >>> TrainConfig().with_options(epochs=5, lr=None).lr == TrainConfig().lr
        True
        """
        return self.replace(**drop_unset(options))


def _lists(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def _typed(value: Any, annotation: str) -> Any:
    if annotation.startswith("tuple"):
        return _tuples(value)
    return frozenset(value) if annotation.startswith("frozenset") and value is not None else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
