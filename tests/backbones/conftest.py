"""A tiny randomly initialised CLIP vision model saved like a hub checkpoint (shared with tests/embed)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """Folder with config.json, weights and preprocessor_config.json: 32 px crop of a 40 px shortest edge."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8)
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPVisionModel(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def lite0():
    """The offline default backbone on CPU (loaded once)."""
    from pigeon.backbones import load

    return load("efficientnet:lite0", device="cpu")
