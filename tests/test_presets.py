"""Presets across the pipeline resolve to the paper's numbers, and explicit options win."""

from __future__ import annotations

import pytest

from pigeon.cells import PRESETS as CELL_PRESETS
from pigeon.errors import PigeonError
from pigeon.model import TrainConfig
from pigeon.presets import PRESETS, resolve
from pigeon.refine import RefineConfig


def test_streetview_is_pigeon_and_the_default():
    train, refine = resolve(TrainConfig, "train", "streetview"), resolve(RefineConfig, "refine", "streetview")
    assert (train.tau_km, train.views) == (75, "mean")
    assert (refine.top_k, refine.temperature, refine.max_move_km, refine.min_samples, refine.xi) == (5, 1.6, 1000,
                                                                                                    3, 0.15)
    assert (CELL_PRESETS["streetview"].min_size, CELL_PRESETS["streetview"].max_size) == (30, 60)
    assert resolve(TrainConfig, "train", None) == train and resolve(RefineConfig, "refine", None) == refine


def test_photo_is_pigeotto():
    train, refine = resolve(TrainConfig, "train", "photo"), resolve(RefineConfig, "refine", "photo")
    assert (train.tau_km, train.views) == (65, "first")
    assert (refine.top_k, refine.temperature, refine.max_move_km, refine.min_samples, refine.xi) == (40, 0.6, None,
                                                                                                    100, 0.1)
    assert (CELL_PRESETS["photo"].min_size, CELL_PRESETS["photo"].max_size) == (1000, 2000)
    assert set(PRESETS) == set(CELL_PRESETS)


def test_explicit_options_win_and_unset_ones_do_not():
    refine = resolve(RefineConfig, "refine", "photo", top_k=7, temperature=None)
    assert (refine.top_k, refine.temperature) == (7, 0.6)
    assert resolve(TrainConfig, "train", "photo", tau_km=80.0).tau_km == 80.0


def test_unknown_preset():
    with pytest.raises(PigeonError, match="unknown preset 'photos'.*'photo'"):
        resolve(TrainConfig, "train", "photos")
