"""How the ``pigeon`` process ends: the exit status, complete output through a pipe, exit handlers and threads.

``pigeon.cli.entry`` (the command) leaves without the interpreter's module teardown (``pigeon.cli.leave``); these run it in a
fresh process, as a user does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image


def _pigeon(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """Run ``pigeon ARGS`` (or the Python ``code``) in a fresh interpreter, its output through pipes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "120"}
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "pigeon", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def test_a_prediction_through_a_pipe_is_complete_and_exits_zero(tmp_path):
    Image.new("RGB", (64, 48), (30, 120, 40)).save(tmp_path / "a.jpg")
    out = _pigeon("predict", "demo", str(tmp_path / "a.jpg"), "--json")
    assert out.returncode == 0, out.stderr
    [pred] = json.loads(out.stdout)  # block-buffered stdout was flushed before the process ended
    assert -90 <= pred["lat"] <= 90 and pred["top_k"]


def test_bad_input_exits_two_with_one_line():
    out = _pigeon("predict", "no-such-model-folder", "x.jpg")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: ")
    assert _pigeon("predict", "--no-such-option").returncode == 2  # the CLI's usage errors keep click's status


def _help_after(setup: str) -> subprocess.CompletedProcess:
    """``pigeon --help`` through ``pigeon.cli.entry`` after running ``setup`` in the same process."""
    return _pigeon(code=f"import atexit, sys, threading, time\n{setup}\nfrom pigeon.cli import entry\n"
                        "sys.argv = ['pigeon', '--help']\nentry()")


def test_exit_handlers_run_before_the_process_ends():
    out = _help_after("atexit.register(lambda: print('handler ran', flush=True))")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout and out.stdout.rstrip().endswith("handler ran")


def test_a_thread_still_running_is_waited_for():
    out = _help_after("threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True))).start()")
    assert out.returncode == 0, out.stderr
    assert "thread done" in out.stdout
