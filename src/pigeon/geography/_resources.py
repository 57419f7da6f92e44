"""Where the geography layer finds its vendored data and keeps its derived caches."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: Environment variable that overrides the cache folder (default ``~/.cache/pigeon``).
CACHE_ENV = "PIGEON_CACHE"


def resource_path(name: str) -> Path:
    """Path of a file vendored in ``pigeon/resources/geography/``."""
    return Path(str(resources.files("pigeon") / "resources" / "geography" / name))


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache`` if given, else ``$PIGEON_CACHE``, else ``~/.cache/pigeon``; created."""
    root = Path(cache) if cache is not None else Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pigeon")
    path = root / "geography"
    path.mkdir(parents=True, exist_ok=True)
    return path
