"""The ``pigeon`` command. Each stage's commands live in their own module and only call the library API."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback

from pigeon.cli._app import app
from pigeon.errors import PigeonError

# importing the command modules registers their commands on the apps
from pigeon.cli import (  # noqa: E402,F401  isort: skip
    data_manifest, data_shards, data_split, data_geography, data_bluemarble, cells, backbones, pretrain, embed, train, refine,
    calibrate, predict, serve, evaluate, demo,
)

__all__ = ["app", "entry", "main", "run"]


def main() -> None:
    """Run the app, turning known errors into one line on stderr and exit status 2 (raises ``SystemExit``)."""
    sys.exit(run())


def entry() -> None:
    """The ``pigeon`` command (and ``python -m pigeon``): :func:`run`, then :func:`leave` with its status."""
    leave(run())


def run() -> int:
    """Run the app on ``sys.argv``; the exit status."""
    try:
        app()
    except SystemExit as exc:
        return exit_status(exc.code)
    except PigeonError as exc:
        if os.environ.get("PIGEON_DEBUG"):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("PIGEON_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set PIGEON_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


def exit_status(code: object) -> int:
    """What ``sys.exit(code)`` exits with: None is 0, an int itself, anything else is printed and is 1."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def leave(status: int) -> None:
    """Exit without the interpreter's teardown of every module, which takes 0.6-1 s once torch is imported
    (``benchmarks/startup.py``): the exit handlers run (temporary folders, logging, worker processes), the
    streams are flushed, then the process ends. Falls back to a normal exit while another thread still runs."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (pigeon ... | head): nothing more to say
            pass
    os._exit(status)
