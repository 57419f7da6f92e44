"""The bundled demo model's outputs on fixed inputs do not drift: the head's top cells and probabilities (the
``cell`` method) match ``golden_demo.json``, written by ``python tools/build_demo_model.py --golden-only``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "python tools/build_demo_model.py --golden-only"


def _tool():
    spec = importlib.util.spec_from_file_location("build_demo_model", ROOT / "tools" / "build_demo_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden():
    tool = _tool()
    stored = json.loads(tool.GOLDEN.read_text())
    assert stored["head_sha256"] == tool.model_fingerprint(), (
        f"the bundled demo model changed; if that is intended, rewrite its golden outputs with '{REGENERATE}'")
    return tool, stored


def test_the_golden_outputs_are_a_real_record(golden):
    _, stored = golden
    outputs = stored["outputs"]
    assert set(outputs) == set(stored["places"]) and len(outputs) >= 4
    for out in outputs.values():
        probs = np.array(out["probs"])
        assert len(out["cells"]) == len(set(out["cells"])) == stored["top_k"]
        assert (np.diff(probs) <= 0).all() and 0 < probs.sum() <= 1 + 1e-6
    assert len({out["cells"][0] for out in outputs.values()}) >= 3  # far-apart places, different guesses


def test_the_bundled_model_reproduces_its_golden_outputs(golden):
    from pigeon.model import Geolocator

    tool, stored = golden
    got = tool.golden_outputs(Geolocator.from_pretrained("demo", device="cpu"))
    for place, want in stored["outputs"].items():
        assert got[place]["cells"] == want["cells"], (place, f"if intended: {REGENERATE}")
        np.testing.assert_allclose(got[place]["probs"], want["probs"], atol=1e-4, err_msg=place)
        np.testing.assert_allclose([got[place]["lat"], got[place]["lon"]], [want["lat"], want["lon"]], atol=1e-4,
                                   err_msg=place)
