"""The import graph of pigeon: no cycle, no module importing a higher stage, light modules staying light."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "tools" / "check_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_and_no_upward_import():
    graph, problems = _checker().check()
    assert len(graph) > 50  # it read the package
    assert problems == []


def _write_tree(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_checker_finds_cycles_and_upward_imports(tmp_path):
    files = {
        "pigeon/__init__.py": "",
        "pigeon/errors.py": "def f():\n    from pigeon.model import x  # hidden behind a lazy import\n",
        "pigeon/model/__init__.py": "from pigeon.model._a import x\n",
        "pigeon/model/_a.py": "from pigeon import errors\nfrom . import _b\nx = 1\n",
        "pigeon/model/_b.py": "import pigeon.model._a\n",
    }
    _write_tree(tmp_path, files)
    checker = _checker()
    graph, problems = checker.check(tmp_path)
    assert "upward import: pigeon.errors (foundation) imports pigeon.model (model)" in problems
    assert checker.cycles(graph) == [["pigeon.errors", "pigeon.model", "pigeon.model._a", "pigeon.model._b"]]
    assert [p for p in problems if p.startswith("import cycle")] == [
        "import cycle: pigeon.errors -> pigeon.model -> pigeon.model._a -> pigeon.errors"]


def test_type_only_imports_count_for_layers_not_cycles(tmp_path):
    files = {
        "pigeon/__init__.py": "",
        "pigeon/errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pigeon.model import x\n",
        "pigeon/model/__init__.py": "from pigeon.model._a import x\n",
        "pigeon/model/_a.py": "from typing import TYPE_CHECKING\nfrom pigeon.model import _b\nx = 1\n",
        "pigeon/model/_b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pigeon.model._a import x\n",
        "pigeon/model/_c.py": "from pigeon._lazy import exports_of\nE = exports_of({'pigeon.model._a': ('x',)})\n",
    }
    _write_tree(tmp_path, files)
    graph, problems = _checker().check(tmp_path)
    assert problems == ["upward import: pigeon.errors (foundation) imports pigeon.model (model)"]
    assert "pigeon.model._a" in graph["pigeon.model._c"]  # the modules a package names for lazy import count


def test_a_module_in_no_layer_is_an_error(tmp_path):
    (tmp_path / "pigeon" / "newstage").mkdir(parents=True)
    (tmp_path / "pigeon" / "__init__.py").write_text("")
    (tmp_path / "pigeon" / "newstage" / "__init__.py").write_text("")
    with pytest.raises(KeyError, match="pigeon.newstage is in no layer"):
        _checker().check(tmp_path)


@pytest.mark.parametrize("module", ["pigeon.refine", "pigeon.cells", "pigeon.geography", "pigeon.presets"])
def test_lower_stages_do_not_load_the_model(module):
    code = (f"import json, sys; import {module}; "
            "print(json.dumps({m: m in sys.modules for m in ('pigeon.model', 'torch')}))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=ROOT).stdout)
    assert not loaded["pigeon.model"]
    if module == "pigeon.presets":
        assert not loaded["torch"]


def test_the_cli_and_its_help_texts_load_no_stage_code():
    code = ("import json, sys; import pigeon.cli; "
            "print(json.dumps([m for m in ('torch', 'pandas', 'geopandas', 'fastapi', 'pigeon.model._fit', "
            "'pigeon.cells._geocells', 'pigeon.refine._refiner') if m in sys.modules]))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=ROOT).stdout)
    assert loaded == []


def test_serve_help_needs_no_fastapi():
    code = ("import sys; sys.modules['fastapi'] = None; sys.argv = ['pigeon', 'serve', '--help']; "
            "from pigeon.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    from pigeon.serve._config import ServeConfig

    assert f"[default: {ServeConfig().port}]" in result.stdout
