"""The ``pigeon`` command. Each stage's commands live in their own module and only call the library API."""

from __future__ import annotations

import os
import sys
import traceback

from pigeon.cli._app import app
from pigeon.errors import PigeonError

# importing the command modules registers their commands on the apps
from pigeon.cli import (  # noqa: E402,F401  isort: skip
    data_manifest, data_shards, data_split, data_geography, data_bluemarble, cells, backbones, pretrain, embed, train, refine,
    predict, serve, evaluate, demo,
)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the app, turning known errors into one line on stderr and exit status 2."""
    try:
        app()
    except PigeonError as exc:
        if os.environ.get("PIGEON_DEBUG"):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("PIGEON_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set PIGEON_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
