"""Shared fixtures. Everything runs offline on CPU."""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import matplotlib
import pytest

import pigeon  # noqa: F401  (first: makes torchvision importable beside the CPU torch, see pigeon._compat)

matplotlib.use("Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def invoke(*args: str) -> CliResult:
    """Run ``pigeon ARGS`` in-process through the real entry point (with its error handling)."""
    from pigeon.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["pigeon", *map(str, args)]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    """``cli("data", "ingest", ...)`` -> CliResult(exit_code, stdout, stderr)."""
    return invoke


def assert_clean_error(result: CliResult, *needles: str) -> None:
    """A user error: non-zero exit, a one-line message, no traceback, mentioning ``needles``."""
    assert result.exit_code != 0, result
    text = result.stderr.strip()
    assert "Traceback" not in text and "Traceback" not in result.stdout, text
    assert text.startswith("error:"), text
    assert len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle.lower() in text.lower(), (needle, text)


@pytest.fixture
def one_thread():
    """One torch thread for the test: on the shared 2-core machine two threads fight other jobs and run ~10x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_store(root, ids, X, shard_size: int = 64, backbone: str = "random"):
    """An embeddings store holding the rows ``X`` (one view each) without a backbone; returns ``Embeddings``."""
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from pigeon.backbones import BackboneCfg
    from pigeon.embed._extract import _finish, _prepare, embed_config, shard_ranges
    from pigeon.embed._store import shard_path, write_shard

    root, ids, X = Path(root), [str(i) for i in ids], np.asarray(X, np.float32)
    cfg = BackboneCfg(source=backbone, embed_dim=X.shape[1], image_size=224)
    config = embed_config(backbone, cfg, pd.DataFrame({"id": ids, "image": ids}), shard_size, 32)
    _prepare(root, config, overwrite=True)
    shards = shard_ranges(len(ids), shard_size)
    for k, rows in enumerate(shards):
        write_shard(shard_path(root, k), ids[rows.start:rows.stop], list(X[rows.start:rows.stop, None, :]), [],
                    X.shape[1])
    return _finish(root, config, len(shards))
