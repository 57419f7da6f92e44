"""The JSON round trip that every config dataclass shares (written to ``meta.json`` / ``config.json``, read back).

Torch-free on purpose, like every config module (``engine/_config``, ``cells/_config``, ``refine/_config``,
``pretrain/_config``): the CLI builds its help texts from the configs' fields, and ``pigeon --help`` must not
import torch (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C", bound="JsonConfig")

#: Numeric precisions of training and inference (``OptimConfig.precision``; ``pigeon._device.autocast_dtype``).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class JsonConfig:
    """Mixin of pigeon's config dataclasses: ``to_dict``, ``from_dict`` and ``replace``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return {f.name: _lists(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, so files of other versions load."""
        fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        return cls(**{k: _tuples(v) if fields[k].startswith("tuple") else v for k, v in d.items() if k in fields})

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
