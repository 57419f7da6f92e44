"""Artefacts of a model folder are loaded when a placing method first reads them, and checked then."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pigeon.errors import PigeonError
from pigeon.model import Geolocator
from pigeon.model._artefacts import Artefacts
from pigeon.model._geolocator import resolve_model_path


def test_a_deferred_entry_is_loaded_and_checked_once_on_first_read():
    loads, checked = [], []
    arts = Artefacts(check=lambda name, value: checked.append((name, value)))
    arts.defer("refiner", lambda: loads.append(1) or "R")
    arts["geoclip"] = "G"
    assert "refiner" in arts and list(arts) == ["refiner", "geoclip"] and not arts.is_loaded("refiner")
    assert loads == [] and checked == []
    assert arts["refiner"] == "R" and arts["refiner"] == "R"
    assert loads == [1] and checked == [("refiner", "R")] and arts.is_loaded("refiner")


def test_a_check_that_fails_leaves_the_entry_unread():
    def refuse(name, value):
        raise PigeonError(f"{name} does not fit")

    arts = Artefacts(check=refuse)
    arts.defer("refiner", lambda: "R")
    for _ in range(2):  # raised on every read, not only the first
        with pytest.raises(PigeonError, match="refiner does not fit"):
            arts["refiner"]
    assert not arts.is_loaded("refiner")


def test_the_demo_loads_geoclip_only_for_the_geoclip_method():
    geo = Geolocator.from_pretrained("demo")
    assert "geoclip" in geo.methods and not geo.artefacts.is_loaded("geoclip")
    X = np.random.default_rng(0).normal(size=(2, geo.head.cfg.in_dim)).astype(np.float32)
    geo.predict_embeddings(X, method="refine")
    assert not geo.artefacts.is_loaded("geoclip")
    [pred, _] = geo.predict_embeddings(X, method="geoclip")
    assert geo.artefacts.is_loaded("geoclip") and pred.method == "geoclip"


def test_a_broken_artefact_folder_fails_when_its_method_is_used(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path("demo"), folder)
    (folder / "geoclip" / "weights.safetensors").write_bytes(b"not safetensors")
    geo = Geolocator.from_pretrained(folder)  # the refine method does not need geoclip
    X = np.random.default_rng(0).normal(size=(1, geo.head.cfg.in_dim)).astype(np.float32)
    assert geo.predict_embeddings(X, method="refine")[0].method == "refine"
    with pytest.raises(PigeonError, match="weights.safetensors"):
        geo.predict_embeddings(X, method="geoclip")


def test_damaged_weight_files_are_one_line_errors(tmp_path):
    """A model's, a pretrained backbone's or an artefact's safetensors file that is not one: the file and the fix
    in one line, not the safetensors library's traceback."""
    from pigeon._io import read_tensors

    bad = tmp_path / "head.safetensors"
    bad.write_bytes(b"\x00" * 3)
    with pytest.raises(PigeonError, match=r"head.safetensors is not a readable safetensors file.*retrain") as err:
        read_tensors(bad, "retrain it")
    assert "\n" not in str(err.value)
    with pytest.raises(PigeonError, match="retrain it"):
        read_tensors(tmp_path / "missing.safetensors", "retrain it")
