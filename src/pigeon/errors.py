"""Exceptions that say what is wrong, where, and what to do next.

Every error a user can cause derives from :class:`PigeonError`; the CLI prints its
message on one line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PigeonError(Exception):
    """Base class for errors caused by input, configuration or missing artefacts."""


class InputError(PigeonError, ValueError):
    """Bad user input: a malformed file, wrong columns, coordinates out of range."""


class ArtifactNotFoundError(PigeonError, FileNotFoundError):
    """A file that a stage needs is missing; the message names the command that makes it."""

    def __init__(self, path: object, hint: str = "") -> None:
        msg = f"{path} not found"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class MissingDependencyError(PigeonError, ImportError):
    """An optional dependency is not installed; the message gives the pip line."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        target = f'"pigeon-geo[{extra}]"' if extra else package
        what = f" for {purpose}" if purpose else ""
        super().__init__(f"{package} is needed{what}: pip install {target}")


class UnknownNameError(PigeonError, KeyError):
    """A registry lookup failed; the message lists close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f"; did you mean {', '.join(map(repr, close))}?"
        elif known:
            msg += f"; known: {', '.join(known[:10])}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class NotFittedError(PigeonError, AttributeError):
    """An estimator was used before ``fit``."""

    def __init__(self, obj: object) -> None:
        super().__init__(
            f"This {type(obj).__name__} instance is not fitted yet. "
            "Call 'fit' with appropriate arguments before using this estimator."
        )
