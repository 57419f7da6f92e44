"""GeoCLIP's published weights read as data: pigeon's modules give what the ``geoclip`` package's own modules give.

These tests import the geoclip package (the ``peers`` extra, part of ``dev``) only to compare against it; pigeon
itself never imports it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from pigeon.model.geoclip import _published

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(importlib.util.find_spec("geoclip") is None,
                                 reason="the 'peers' extra (geoclip==1.3.0) is not installed: "
                                        "pip install -e '.[peers]'")]
N_GALLERY = 5000  # a subset of the 100K gallery keeps the reference encoder's run short


@pytest.fixture(scope="module")
def theirs():
    """The geoclip package's own location encoder and image MLP with its released weights."""
    import pigeon.backbones  # noqa: F401  (makes torchvision importable for transformers, see pigeon._compat)
    from geoclip.model.location_encoder import LocationEncoder

    root = _published.package_dir()
    mlp = torch.nn.Sequential(torch.nn.Linear(768, 768), torch.nn.ReLU(), torch.nn.Linear(768, 512))
    mlp.load_state_dict(torch.load(root / _published.FILES["image"], weights_only=True))
    scale = torch.load(root / _published.FILES["logit_scale"], weights_only=True).exp()
    return LocationEncoder().eval(), mlp.eval(), scale


@pytest.fixture(scope="module")
def ours():
    return _published.published_towers()


def _gps(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.tensor(np.column_stack([rng.uniform(-90, 90, n), rng.uniform(-180, 180, n)]), dtype=torch.float32)


@torch.no_grad()
def test_location_features_equal_geoclips(theirs, ours):
    gps = torch.cat([_gps(300), torch.tensor([[90.0, 180.0], [-90.0, -180.0], [0.0, 0.0]])])
    torch.testing.assert_close(ours.location(gps), theirs[0](gps), atol=1e-5, rtol=0)


@torch.no_grad()
def test_image_projections_equal_geoclips(theirs, ours):
    features = torch.randn(64, 768, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours.image(features), theirs[1](features), atol=1e-5, rtol=0)
    assert float(ours.scale()) == pytest.approx(float(theirs[2]), rel=1e-6)


@torch.no_grad()
def test_top_predictions_over_its_gallery_match(theirs, ours):
    """GeoCLIP.predict's rule (softmax over the gallery, top k) on the same image features and gallery points."""
    from pigeon.model.geoclip import top_points

    gallery = torch.from_numpy(_published.published_gallery()[::100_000 // N_GALLERY]).float()
    features = torch.randn(8, 768, generator=torch.Generator().manual_seed(2))
    location, mlp, scale = theirs
    image = torch.nn.functional.normalize(mlp(features), dim=1)
    probs = (scale * image @ torch.nn.functional.normalize(location(gallery), dim=1).T).softmax(dim=-1)
    expected = torch.topk(probs, 5, dim=1)
    rows, ours_probs = top_points(ours.image_features(features), ours.location_features(gallery),
                                  float(ours.scale()), 5)
    np.testing.assert_array_equal(rows, expected.indices.numpy())
    np.testing.assert_allclose(ours_probs, expected.values.numpy(), atol=1e-5)


def test_the_published_files_are_checked_and_renamed():
    state = _published.published_state()
    assert len([k for k in state if k.startswith("location.")]) == 27
    assert state["location.capsules.2.fourier.b"].shape == (256, 2)
    assert set(_published.file_digests()) == set(_published.FILES)
    with pytest.raises(Exception, match="unexpected key"):
        _published._location_key("LocEnc0.extra.weight")


@pytest.fixture(scope="module")
def tiny_clip768(tmp_path_factory):
    """A tiny random CLIP (text and vision towers) whose image projection is 768-d, as CLIP ViT-L/14's."""
    from tests.support.clip import save_tiny_full_clip

    path = tmp_path_factory.mktemp("tiny_clip768")
    save_tiny_full_clip(path, projection_dim=768)
    return path


def test_the_image_path_end_to_end_matches_geoclip(tiny_clip768, tmp_path, monkeypatch):
    """A photo through GeoCLIP.predict (the package's own model, with the tiny CLIP) and through pigeon's
    Geolocator.predict (clip_image: backbone, published towers) gives the same top points and probabilities."""
    from PIL import Image
    from transformers import AutoImageProcessor

    import geoclip.model.image_encoder as image_encoder
    from geoclip import GeoCLIP
    from pigeon.backbones import load
    from pigeon.images import DecodeConfig
    from pigeon.model import Geolocator

    # the tiny CLIP has no tokenizer: GeoCLIP only needs the processor's image half (transformers' PIL one)
    monkeypatch.setattr(image_encoder.AutoProcessor, "from_pretrained",
                        lambda path: AutoImageProcessor.from_pretrained(path, backend="pil"))
    monkeypatch.setenv("PIGEON_CACHE_DIR", str(tmp_path / "cache"))
    theirs = GeoCLIP(from_pretrained=True, clip_path=str(tiny_clip768)).eval()
    gallery = _published.published_gallery()[::100_000 // N_GALLERY]
    theirs.gps_gallery = torch.from_numpy(gallery).float()
    photo = tmp_path / "kauai.png"
    Image.open(_published.package_dir() / "images" / "Kauai.png").convert("RGB").save(photo)
    gps, prob = theirs.predict(str(photo), 5)

    backbone = load(f"clip_image:{tiny_clip768}", device="cpu")
    backbone.decode = DecodeConfig(exact=True)  # every pixel resized, as GeoCLIP's transformers processor does
    geo = Geolocator.from_pretrained("geoclip", backbone=backbone, gallery=gallery)
    [pred] = geo.predict(str(photo), top_k=5, method="geoclip")
    np.testing.assert_allclose([(c.lat, c.lon) for c in pred.top_k], gps.numpy(), atol=1e-4)
    np.testing.assert_allclose([c.prob for c in pred.top_k], prob.numpy(), atol=1e-5)
    assert pred.method == "geoclip" and pred.refined
    cached = list((tmp_path / "cache" / "geoclip").glob("gallery-*.safetensors"))
    assert len(cached) == 1  # the gallery was encoded once; a second model reads the features back
    again = Geolocator.from_pretrained("geoclip", backbone=geo.backbone, gallery=gallery)
    assert torch.equal(again.artefacts["geoclip"].features, geo.artefacts["geoclip"].features)
    np.testing.assert_allclose([c.prob for c in again.predict(str(photo), top_k=5, method="geoclip")[0].top_k],
                               [c.prob for c in pred.top_k], rtol=1e-6)  # the same up to the matmul's rounding
