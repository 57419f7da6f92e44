"""Every config dataclass round-trips through JSON with one shared implementation."""

from __future__ import annotations

import json

import pytest

from pigeon.backbones._config import BackboneCfg
from pigeon.engine import OptimConfig
from pigeon.model import TrainConfig
from pigeon.model.layers import HeadConfig
from pigeon.pretrain import PretrainConfig
from pigeon.refine import RefineConfig

CONFIGS = [
    OptimConfig(betas=(0.8, 0.95)),
    TrainConfig(hidden_dim=64, smoothing=False),
    PretrainConfig(preset="photo", epochs=2),
    RefineConfig(top_k=7, max_move_km=None),
    HeadConfig(in_dim=8, n_cells=3, regression=("elevation", "temperature")),
    BackboneCfg("somewhere", 16, 32, mean=(0.1, 0.2, 0.3)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_json_round_trip_gives_the_same_config(config):
    data = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(data) == config


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_unknown_keys_from_other_versions_are_ignored(config):
    data = {**config.to_dict(), "a_field_from_the_future": 1}
    assert type(config).from_dict(data) == config


def test_replace_changes_only_the_named_fields():
    config = RefineConfig()
    changed = config.replace(top_k=9)
    assert changed.top_k == 9 and changed.temperature == config.temperature and config.top_k == 5
