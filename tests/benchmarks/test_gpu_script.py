"""``benchmarks/gpu.py`` cannot rot: its smoke mode runs every section at tiny sizes on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.jpeg import torchvision_decodes

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"
SECTIONS = {"forward", "pipeline", "pretrain", "head", "gallery"}


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_smoke_run_measures_every_section_and_agrees_with_pigeon(tmp_path):
    out = _run("--smoke", "--json", str(tmp_path / "gpu.json"), "--work", str(tmp_path / "work"))
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    rows = report["rows"]
    assert {r["section"] for r in rows} == SECTIONS
    assert not [r for r in rows if r["what"] in ("(failed)", "(skipped)")], rows
    measured = [r for r in rows if r["value"] != "-"]
    device_decode = torchvision_decodes()  # pigeon's device-decoding row, on torchvision's CPU decoder
    assert len(measured) == 8 + device_decode
    assert all(float(r["value"].split()[0].replace(",", "")) > 0 for r in measured)
    assert report["checks"]["refine_matches_pigeon"] is True
    assert report["checks"]["knn_top1_matches_faiss"] == 1.0
    [row] = [r for r in rows if r["what"] == "12 MP JPEG shards, torchvision CPU decode"]
    if device_decode:
        assert report["checks"]["device_decode"]["failed_images"] == 0
        assert report["checks"]["device_decode"]["cosine_vs_pillow_min"] > 0.99
    else:
        assert row["note"].startswith("not run: decoding on cpu needs torchvision")
    assert "| pipeline | 512-px JPEG shards |" in out.stdout  # the table goes to stdout too


def test_without_cuda_it_says_so_on_one_line():
    out = _run("--json", "/dev/null")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: CUDA is not available") and len(out.stderr.strip().splitlines()) == 1
