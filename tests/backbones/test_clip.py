"""``clip:<folder>`` through transformers: loading, preprocessing parity with the processor, pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pigeon.backbones import backbone_cfg, load
from pigeon.errors import ArtifactNotFoundError


@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_dir):
    return load(f"clip:{tiny_clip_dir}", device="cpu")


def _images():
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for shape in
            [(32, 32, 3), (50, 90, 3), (90, 50, 3), (7, 130, 3), (1, 1, 3)]]


def test_loads_through_clip_path_with_cfg_from_folder(tiny_clip, tiny_clip_dir):
    assert tiny_clip.name == f"clip:{tiny_clip_dir}"
    assert tiny_clip.embed_dim == 32 and tiny_clip.cfg.image_size == 32
    assert tiny_clip.transform.resize_size == 40
    assert tiny_clip.cfg.interpolation == "bicubic"
    assert backbone_cfg(f"clip:{tiny_clip_dir}") == tiny_clip.cfg
    assert not any(p.requires_grad for p in tiny_clip.parameters()) and not tiny_clip.training


@pytest.mark.parametrize("i", range(5))
def test_preprocessing_matches_the_processor(tiny_clip, tiny_clip_dir, i):
    """Exact decoding is the processor bit for bit; the default (crop box resized alone) is within one grey level."""
    from transformers import AutoImageProcessor

    from pigeon.backbones import ImageTransform
    from pigeon.images import DecodeConfig

    img = _images()[i]
    # the PIL processor: with torchvision installed (the models extra) transformers would pick its torchvision one
    processor = AutoImageProcessor.from_pretrained(tiny_clip_dir, backend="pil")
    expected = processor(images=img, return_tensors="pt")["pixel_values"][0].float()
    exact = ImageTransform(tiny_clip.cfg, DecodeConfig(exact=True))(img)
    assert exact.shape == expected.shape == (3, 32, 32) and exact.dtype == torch.float32
    torch.testing.assert_close(exact, expected, atol=1e-5, rtol=0)
    one_level = torch.tensor(1 / 255 / np.asarray(tiny_clip.cfg.std), dtype=torch.float32)[:, None, None]
    ours = tiny_clip.preprocess(img)
    assert ((ours - expected).abs() <= one_level + 1e-5).all()
    assert ((ours - expected).abs() > 1e-5).float().mean() < 0.05


def test_embedding_is_mean_of_all_tokens_of_last_hidden_state(tiny_clip):
    imgs = _images()
    emb = tiny_clip.embed(imgs, batch_size=2)
    pixels = torch.stack([tiny_clip.preprocess(im) for im in imgs])
    with torch.no_grad():
        hidden = tiny_clip.model(pixel_values=pixels).last_hidden_state  # (N, 1 + 16 patches, 32)
    assert hidden.shape[1] == 17
    assert emb.dtype == np.float32 and emb.shape == (5, 32)
    np.testing.assert_allclose(emb, hidden.mean(dim=1).numpy(), atol=1e-5)


def test_last_block_is_last_encoder_layer_and_trainable(tiny_clip_dir):
    bb = load(f"clip:{tiny_clip_dir}", device="cpu")
    params = bb.unfreeze_last_block()
    layer = bb.last_block()
    assert layer is [m for n, m in bb.named_modules() if n.endswith("encoder.layers.1")][0]
    assert {id(p) for p in params} == {id(p) for p in layer.parameters()}
    trainable = [n for n, p in bb.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.1." in n for n in trainable)
    bb.train()
    bb(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in params)
    assert all(p.grad is None for n, p in bb.named_parameters() if ".layers.0." in n)


def test_bare_folder_name_and_dtype(tiny_clip_dir, tiny_clip):
    bb = load(str(tiny_clip_dir), device="cpu", dtype="bfloat16")
    assert bb.dtype == torch.bfloat16
    img = _images()[1]
    np.testing.assert_allclose(bb.embed(img), tiny_clip.embed(img), atol=0.1)


@pytest.mark.parametrize("spec", ["{tmp}/nowhere", "openai/clip-vit-large-patch14-336"])
def test_missing_folder_or_uncached_hub_model_is_a_clear_error(tmp_path, spec):
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("openai/clip-vit-large-patch14-336", "config.json"), str):
        pytest.skip("the hub model is cached on this machine")  # tests run with HF_HUB_OFFLINE=1
    with pytest.raises(ArtifactNotFoundError, match="save_pretrained") as info:
        load(f"clip:{spec.format(tmp=tmp_path)}")
    assert "\n" not in str(info.value)


def test_unreachable_hub_fails_at_once_without_retrying(monkeypatch):
    """No hub, no cache: one line naming the hub, and transformers is never asked (it would retry for ~30 s)."""
    from huggingface_hub import constants, try_to_load_from_cache
    from transformers import CLIPVisionModel

    if isinstance(try_to_load_from_cache("openai/clip-vit-base-patch16", "config.json"), str):
        pytest.skip("the hub model is cached on this machine")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once

    def never(*args, **kwargs):
        raise AssertionError("from_pretrained must not be called when the hub cannot be reached")

    monkeypatch.setattr(CLIPVisionModel, "from_pretrained", never)
    with pytest.raises(ArtifactNotFoundError, match=r"hub \(http://127.0.0.1:9\) cannot be reached") as info:
        load("clip:openai/clip-vit-base-patch16")
    assert "\n" not in str(info.value)


def test_long_loader_errors_are_shortened_at_a_word_boundary():
    from pigeon.backbones.clip import _first_line

    words = " ".join(f"word{i:03d}" for i in range(60))
    short = _first_line(OSError(words + "\nsecond line"))
    assert short.endswith(" ...") and len(short) <= 210
    assert all(w.startswith("word") and len(w) == 7 for w in short.removesuffix(" ...").split())
    assert _first_line(OSError("short reason\nmore")) == "short reason"


def test_clip_image_gives_clips_own_projected_image_embedding(tmp_path):
    """``clip_image:`` on a full CLIP folder: CLIPModel.get_image_features (the projection of the CLS token), with
    the top-level projection size even where the saved vision config keeps its default."""
    from tests.support.clip import save_tiny_full_clip

    model = save_tiny_full_clip(tmp_path, projection_dim=24)
    bb = load(f"clip_image:{tmp_path}", device="cpu")
    assert bb.embed_dim == 24 and backbone_cfg(f"clip_image:{tmp_path}").embed_dim == 24
    pixels = torch.stack([bb.preprocess(im) for im in _images()[:3]])
    with torch.no_grad():
        expected = model.get_image_features(pixel_values=pixels)
    expected = getattr(expected, "pooler_output", expected)  # transformers 5 returns an output object
    np.testing.assert_allclose(bb.embed(_images()[:3]), expected.numpy(), atol=1e-5)
