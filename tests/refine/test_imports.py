"""Layering: the refiner is a lower stage than the model; it never imports ``pigeon.model``, not even lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pigeon.refine


def test_importing_pigeon_refine_does_not_load_the_model():
    code = ("import sys, pigeon.refine, pigeon.refine._index, pigeon.refine._refiner; "
            "print(sorted(m for m in sys.modules if m.startswith('pigeon.model')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_no_refine_module_imports_the_model_anywhere():
    imports = []
    for path in Path(pigeon.refine.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):  # function bodies too: lazy imports count
            if isinstance(node, ast.ImportFrom) and node.module:
                imports.append((path.name, node.module))
            elif isinstance(node, ast.Import):
                imports += [(path.name, alias.name) for alias in node.names]
    assert len(imports) > 10  # the walk sees the package's imports
    assert [(f, m) for f, m in imports if m.startswith("pigeon.model")] == []
