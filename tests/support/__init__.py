"""Helpers shared by the tests (the one place for them: test modules import from here, never from each other).

``tests.support`` holds the general ones (the CLI in-process, clean-error checks, a store of given rows);
the submodules hold those of one area: ``model`` (synthetic data with a known answer, a tiny backbone, toy
cells), ``geo`` (brute-force distances, a clustered manifest), ``engine`` (a toy regression task), ``cells``
(a toy world), ``maps`` (synthetic admin areas), ``evaluate`` (hand-checked cases), ``serve`` (upload bytes,
clients, the live service), ``hostile`` (the hostile-input corpus), ``distributed`` (several processes joined like
torchrun), ``dummy_placer`` (a placing method made the way a plugin would), ``clip`` (tiny random full CLIPs).
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

__all__ = ["CliResult", "assert_clean_error", "invoke", "write_store"]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def invoke(*args: str) -> CliResult:
    """Run ``pigeon ARGS`` in-process through the real entry point's error handling (``pigeon.cli.run``: what
    ``main`` runs before it ends the process)."""
    from pigeon.cli import run

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["pigeon", *map(str, args)]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = run()
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_clean_error(result: CliResult, *needles: str) -> None:
    """A user error: non-zero exit, a one-line message, no traceback, mentioning ``needles``."""
    assert result.exit_code != 0, result
    text = result.stderr.strip()
    assert "Traceback" not in text and "Traceback" not in result.stdout, text
    assert text.startswith("error:"), text
    assert len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle.lower() in text.lower(), (needle, text)


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
