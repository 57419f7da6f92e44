"""The one preset table: every stage resolves through one merge, presets change only what they name, explicit
options win, and the CLI's help texts show the values the library uses."""

from __future__ import annotations

import dataclasses

import pytest

from pigeon._config import drop_unset
from pigeon.cells import CellConfig
from pigeon.cli._options import default_of, described, show
from pigeon.errors import PigeonError
from pigeon.model import TrainConfig
from pigeon.presets import DEFAULT_PRESET, PRESETS, STAGES, Preset, resolve
from pigeon.pretrain import PretrainConfig
from pigeon.refine import RefineConfig

CONFIGS = {"cells": CellConfig, "train": TrainConfig, "refine": RefineConfig, "pretrain": PretrainConfig}


def test_every_stage_of_the_table_has_a_config():
    assert set(CONFIGS) == set(STAGES) == {f.name for f in dataclasses.fields(Preset)} - {"paper", "description"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("stage", STAGES)
def test_a_preset_changes_exactly_what_it_names(stage, preset):
    config_cls, changes = CONFIGS[stage], getattr(PRESETS[preset], stage)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    assert set(changes) <= fields, f"{preset}.{stage} names no field {set(changes) - fields}"
    resolved, default = resolve(config_cls, stage, preset), config_cls()
    for name in fields:
        assert getattr(resolved, name) == changes.get(name, getattr(default, name)), name
    resolved.validate()  # every preset is a valid set-up


def test_the_default_preset_is_the_defaults_and_the_other_changes_every_stage():
    assert all(not getattr(PRESETS[DEFAULT_PRESET], stage) for stage in STAGES)
    for name, preset in PRESETS.items():
        if name != DEFAULT_PRESET:
            assert all(getattr(preset, stage) for stage in STAGES), name
    for stage, config_cls in CONFIGS.items():
        assert resolve(config_cls, stage, None) == resolve(config_cls, stage, DEFAULT_PRESET) == config_cls()


def test_explicit_options_win_and_unset_ones_do_not():
    photo = PRESETS["photo"].refine
    refine = resolve(RefineConfig, "refine", "photo", top_k=photo["top_k"] + 1, temperature=None)
    assert (refine.top_k, refine.temperature) == (photo["top_k"] + 1, photo["temperature"])
    assert resolve(TrainConfig, "train", "photo", tau_km=1.5).tau_km == 1.5
    assert TrainConfig().with_options(epochs=3, lr=None) == dataclasses.replace(TrainConfig(), epochs=3)
    assert drop_unset({"a": None, "b": 0, "c": False}) == {"b": 0, "c": False}


def test_a_preset_may_set_a_field_to_none():
    assert "max_move_km" in PRESETS["photo"].refine and PRESETS["photo"].refine["max_move_km"] is None
    assert resolve(RefineConfig, "refine", "photo").max_move_km is None
    assert RefineConfig().max_move_km is not None


def test_unknown_preset_and_unknown_option():
    with pytest.raises(PigeonError, match="unknown preset 'photos'.*'photo'"):
        resolve(TrainConfig, "train", "photos")
    with pytest.raises(PigeonError, match="unknown TrainConfig setting.*tau\\b.*known: .*tau_km"):
        resolve(TrainConfig, "train", None, tau=80.0)


def test_help_texts_show_the_defaults_and_the_presets_values():
    text = described("Temperature.", TrainConfig, "tau_km", stage="train")
    assert text == (f"Temperature. \\[default: {show(TrainConfig().tau_km)}; "
                    f"--preset photo: {show(PRESETS['photo'].train['tau_km'])}]")
    assert described("Seed.", TrainConfig, "seed", stage="train") == f"Seed. \\[default: {show(TrainConfig().seed)}]"
    assert default_of(CellConfig, "optics_params") == CellConfig().optics_params
    assert (show(None), show(True), show(1e-6), show((0.8, 0.1))) == ("none", "on", "1e-06", "0.8,0.1")


@pytest.mark.parametrize("command, option, config_cls, name", [
    (["train"], "--tau", TrainConfig, "tau_km"),
    (["refine", "build"], "--top-k", RefineConfig, "top_k"),
    (["cells", "build"], "--max-size", CellConfig, "max_size"),
    (["pretrain"], "--lr", PretrainConfig, "lr"),
])
def test_cli_help_shows_the_library_values(cli, monkeypatch, command, option, config_cls, name):
    monkeypatch.setenv("COLUMNS", "2000")
    stage = {TrainConfig: "train", RefineConfig: "refine", CellConfig: "cells", PretrainConfig: "pretrain"}[config_cls]
    out = " ".join(cli(*command, "--help").stdout.split())
    line = out[out.index(option + " ", out.index("Options")):]
    photo = PRESETS["photo"]
    assert f"[default: {show(default_of(config_cls, name))}; --preset photo: " \
           f"{show(getattr(photo, stage)[name])}]" in line[:400]
