"""Every named backbone of the registry honours the one interface: shapes, dtype, determinism, frozen by default,
a trainable last block, and preprocessing recorded with the weights.

A backbone whose weights are on this machine is tested as it is; one whose weights are not (model-hub CLIPs, an
EfficientNet variant whose package is not installed) is replaced by a tiny randomly initialised model of the same
family with the entry's preprocessing, loaded through the same loader.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pigeon.backbones import backbone_cfg, list_backbones, load, pretrained_entry
from tests.support.clip import tiny_clip_config

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
PREPROCESSING = ("image_size", "mean", "std", "interpolation", "crop_pct")


def _tiny_clip(folder, cfg, scheme: str = "clip"):
    """A 2-layer CLIP vision model of the entry's input size and preprocessing, saved like a hub checkpoint
    (``clip_image``: a full CLIP, both towers and the projections, as CLIP's own image embedding needs)."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    patch = 16 if cfg.image_size % 16 == 0 else 14
    if scheme == "clip_image":
        CLIPModel(tiny_clip_config(24, cfg.image_size, patch)).save_pretrained(folder)
    else:
        CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=cfg.image_size,
                                         patch_size=patch)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": round(cfg.image_size / cfg.crop_pct)},
                       crop_size={"height": cfg.image_size, "width": cfg.image_size}, image_mean=list(cfg.mean),
                       image_std=list(cfg.std), resample=3).save_pretrained(folder)
    return load(f"{scheme}:{folder}", device="cpu")


def _random_efficientnet(name, tmp_path, monkeypatch):
    """The real loader, fed randomly initialised weights of the variant (its weights package is not here)."""
    from pigeon.backbones import efficientnet

    variant = name.split(":", 1)[1]
    torch.manual_seed(0)
    weights = tmp_path / f"{variant}.pth"
    torch.save(efficientnet.EfficientNetLite(variant).model.state_dict(), weights)
    monkeypatch.setattr(efficientnet, "weights_path", lambda v: weights)
    return load(name, device="cpu")


@pytest.fixture(params=list_backbones(), scope="module")
def named(request, tmp_path_factory):
    """(name, entry, backbone, whether it is the real model)."""
    name = request.param
    entry = pretrained_entry(name)
    if entry.available:
        return name, entry, load(name, device="cpu"), True
    scheme = name.split(":", 1)[0]
    folder = tmp_path_factory.mktemp(scheme)
    if scheme in ("clip", "clip_image"):
        return name, entry, _tiny_clip(folder, entry.cfg, scheme), False
    if scheme == "efficientnet":
        with pytest.MonkeyPatch.context() as mp:
            return name, entry, _random_efficientnet(name, folder, mp), False
    pytest.fail(f"{name}: no stand-in for the scheme {scheme!r}; add one to this test")


def _images():
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for shape in
            [(64, 64, 3), (120, 40, 3), (15, 300, 3), (300, 15, 3)]]  # up to the 20:1 aspect-ratio limit


def test_the_registry_lists_the_paper_and_offline_backbones():
    names = list_backbones()
    assert "efficientnet:lite0" in names and "clip:openai/clip-vit-large-patch14-336" in names
    assert list_backbones("efficientnet:*") == [n for n in names if n.startswith("efficientnet:")]


def test_preprocessing_is_recorded_with_the_weights(named):
    name, entry, backbone, real = named
    cfg = entry.cfg
    assert backbone_cfg(name) == cfg  # read without loading weights
    assert cfg.image_size >= 32 and len(cfg.mean) == len(cfg.std) == 3
    assert all(0 <= m <= 1 for m in cfg.mean) and all(0 < s <= 1 for s in cfg.std)
    assert cfg.interpolation in INTERPOLATIONS and 0 < cfg.crop_pct <= 1 and cfg.source and cfg.pooling
    assert cfg.license != "unknown" and cfg.embed_dim >= 1
    if real or name.startswith("efficientnet:"):
        assert backbone.cfg == cfg
    else:  # the stand-in's folder carries the entry's preprocessing, read back by the same loader
        assert {k: getattr(backbone.cfg, k) for k in PREPROCESSING} == \
               {k: pytest.approx(getattr(cfg, k)) for k in PREPROCESSING}


def test_preprocess_gives_the_model_input_for_any_shape(named):
    _, entry, backbone, _ = named
    for img in _images():
        x = backbone.preprocess(img)
        assert x.shape == (3, entry.cfg.image_size, entry.cfg.image_size) and x.dtype == torch.float32
        assert torch.isfinite(x).all()


def test_embeddings_have_the_shape_and_dtype_and_are_deterministic(named):
    _, _, backbone, _ = named
    images = _images()
    first = backbone.embed(images, batch_size=4)
    again = backbone.embed(images, batch_size=1)
    assert first.shape == (len(images), backbone.embed_dim) and first.dtype == np.float32
    assert np.isfinite(first).all()
    scale = float(np.abs(first).max())  # random weights may give tiny activations: compare relative to them
    assert scale > 0
    np.testing.assert_allclose(first, again, rtol=1e-4, atol=1e-4 * scale)  # batch composition does not matter
    assert np.abs(first[0] - first[1]).max() > 1e-3 * scale  # different images, different embeddings


def test_frozen_by_default_with_a_trainable_last_block(named):
    _, _, backbone, _ = named
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    params = backbone.unfreeze_last_block()
    try:
        owned = {id(p) for p in backbone.parameters()}
        assert params and all(p.requires_grad and id(p) in owned for p in params)
        assert sum(p.requires_grad for p in backbone.parameters()) == len(params)
        pixels = torch.stack([backbone.preprocess(img) for img in _images()[:2]])
        backbone(backbone.prepare(pixels)).sum().backward()
        assert all(p.grad is not None for p in params)
    finally:
        backbone.requires_grad_(False)
        backbone.zero_grad(set_to_none=True)
