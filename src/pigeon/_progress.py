"""One progress-bar style for all long work (rich), quiet when not attached to a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.progress import Progress

T = TypeVar("T")


def progress() -> Progress:
    """A rich ``Progress`` with the project's columns, writing to stderr."""
    from rich.console import Console  # imported here: rich.progress costs start-up time to every command
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True), transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` while showing a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress() as bar:
        task = bar.add_task(description, total=total, info="")
        for item in items:
            yield item
            bar.advance(task)


def track_chunks(n: int, size: int, description: str) -> Iterator[slice]:
    """Slices of ``range(n)``, ``size`` at a time, while the bar counts the items done (not the chunks).

    >>> for part in track_chunks(len(images), 64, "embedding images"):
    ...     embed(images[part])
    """
    with progress() as bar:
        task = bar.add_task(description, total=n, info="")
        for start in range(0, n, size):
            stop = min(n, start + size)
            yield slice(start, stop)
            bar.advance(task, stop - start)
