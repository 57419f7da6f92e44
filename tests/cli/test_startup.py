"""Start-up stays light: the CLI and one prediction import only what they use (a sys.modules check, not a timing).

``benchmarks/startup.py`` measures the times; this test keeps the import boundary that makes them short.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: never needed to print help or to answer one prediction with the bundled model
HEAVY = ("torch", "transformers", "geopandas", "shapely", "matplotlib", "faiss", "fastapi", "scipy", "sklearn",
         "webdataset", "ray")


def _loaded_after(code: str) -> list[str]:
    """Top-level packages of HEAVY that a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return [m for m in json.loads(out.stdout.strip().splitlines()[-1]) if m in HEAVY]


def test_importing_the_cli_loads_no_heavy_module():
    assert _loaded_after("import pigeon.cli") == []
    assert _loaded_after("import pigeon, pigeon.cells, pigeon.model, pigeon.engine, pigeon.pretrain") == []


def test_help_loads_no_heavy_module():
    code = "import sys\nfrom pigeon.cli import run\nsys.argv = ['pigeon', '--help']\nassert run() == 0"
    assert _loaded_after(code) == []
    probe = code + "\nprint(sorted(m for m in ('numpy', 'PIL', 'pandas') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]"  # help texts read configs, not the image decoder


def test_config_modules_import_without_torch():
    """The CLI builds help texts from these dataclasses' fields, so they must not pull in torch."""
    assert _loaded_after("import pigeon._config, pigeon.engine._config, pigeon.pretrain._config, "
                         "pigeon.cells._config, pigeon.refine._config, pigeon.model.geoclip._config") == []


def test_one_prediction_loads_only_what_it_needs(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), (30, 120, 40)).save(tmp_path / "a.jpg")
    code = ("from pigeon.model import Geolocator\n"
            f"[p] = Geolocator.from_pretrained('demo').predict({str(tmp_path / 'a.jpg')!r})\n"
            "assert p.top_k and -90 <= p.lat <= 90")
    assert _loaded_after(code) == ["torch"]  # no geopandas, shapely, scipy, transformers, faiss, matplotlib
