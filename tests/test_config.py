"""Every config dataclass round-trips through JSON with one shared implementation."""

from __future__ import annotations

import json

import pytest

from pigeon.backbones._config import BackboneCfg
from pigeon.cells import CellConfig
from pigeon.data import BlueMarbleConfig, SplitConfig
from pigeon.demo import DemoConfig
from pigeon.engine import OptimConfig
from pigeon.model import FinetuneConfig, TrainConfig
from pigeon.model.layers import HeadConfig
from pigeon.pretrain import PretrainConfig
from pigeon.refine import RefineConfig
from pigeon.serve._config import ServeConfig

CONFIGS = [
    OptimConfig(betas=(0.8, 0.95)),
    TrainConfig(hidden_dim=64, smoothing=False),
    PretrainConfig(caption_style="photo", epochs=2),
    CellConfig(min_size=3, optics_params=((4, 0.1),), boundaries="areas.gpkg"),
    FinetuneConfig(epochs=2, aux=False),
    SplitConfig(by="region", fractions=(0.5, 0.25, 0.25), n_regions=7),
    BlueMarbleConfig(n=9, lat_range=(-10.0, 10.0)),
    DemoConfig(n=50, pretrain=True),
    ServeConfig(port=9000, cors_origins=("http://a.example",), max_precision_km=25.0),
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


def test_secrets_stay_out_of_the_json():
    config = ServeConfig(api_keys=frozenset({"k" * 20}))
    assert "api_keys" not in config.to_dict() and "k" * 20 not in json.dumps(config.to_dict())


def test_with_options_keeps_unset_ones_and_names_unknown_ones():
    assert ServeConfig.from_options(port=None, max_views=2) == ServeConfig(max_views=2)
    with pytest.raises(Exception, match="unknown ServeConfig setting.*portt"):
        ServeConfig.from_options(portt=1)
