"""Batched JPEG decoding on a torch device (``DecodeConfig(device=...)``): the workers' part (header checks, the
hand-off of bytes) and the embedding process's part (decode, orientation, geometry, fallbacks), on the CPU."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pigeon.backbones import BackboneCfg, EncodedJpeg, ImageTransform, StagedBatch
from pigeon.backbones import _batch_decode as bd
from pigeon.errors import InputError
from pigeon.images import CorruptImageError, DecodeConfig, ImageShapeError, ImageTooLargeError
from tests.support.jpeg import DECODERS, jpeg, photo, refusing, use_decoder, without_quantisation_tables

CFG = BackboneCfg(source="test", embed_dim=8, image_size=64, crop_pct=0.875, interpolation="bicubic")
ON_CPU = DecodeConfig(device="cpu")
#: every EXIF orientation and the PIL transposition that makes it upright
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


@pytest.fixture(params=DECODERS)
def decoder(request, monkeypatch) -> str:
    """Which decoder the batches go to (it is set up): the Pillow stand-in, or torchvision's where it loads."""
    use_decoder(monkeypatch, request.param)
    return request.param


def _grey_levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| of two normalised pixel tensors, in grey levels."""
    return ((a - b) * torch.tensor(CFG.std).view(3, 1, 1) * 255).abs()


def _device_pixels(transform: ImageTransform, sources: list) -> tuple[list, torch.Tensor, list]:
    staged = [transform.stage(s) for s in sources]
    return transform.finish(StagedBatch.of(list(range(len(sources))), staged))


def test_decode_device_is_a_recorded_config_field():
    assert DecodeConfig().device is None
    assert DecodeConfig.from_dict(ON_CPU.to_dict()) == ON_CPU
    assert DecodeConfig.from_dict({"exact": False, "reducing_gap": 2.0, "max_aspect_ratio": 20.0}).device is None
    with pytest.raises(InputError, match="unknown decode device 'gpu'; use cuda"):
        DecodeConfig(device="gpu")


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (640, 480), (50, 30)])
def test_device_path_agrees_with_pillow(tmp_path, decoder, size):
    """Within 0.1 grey level on average (at most 2) of Pillow's exact path (every pixel resized, as the
    transformers processors do), for downscaled, portrait and upscaled photos."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg(photo(*size)))
    transform = ImageTransform(CFG, ON_CPU)
    keys, pixels, failures = _device_pixels(transform, [path])
    assert keys == [0] and failures == [] and pixels.shape == (1, 3, 64, 64) and pixels.dtype == torch.float32
    diff = _grey_levels(pixels[0], ImageTransform(CFG, DecodeConfig(exact=True))(path))
    assert diff.mean() < 0.1 and diff.max() <= 2.0
    draft = _grey_levels(pixels[0], ImageTransform(CFG)(path))  # the default: JPEG draft mode / reduce
    assert draft.mean() < 2.0


def test_embeddings_agree_with_pillow(tmp_path, decoder, tiny_clip_dir):
    """Cosine >= 0.999 between the tiny CLIP's embeddings of the device path and of the Pillow path."""
    from pigeon.backbones import load

    tiny_clip = load(f"clip:{tiny_clip_dir}", device="cpu")
    paths = []
    for i, size in enumerate([(120, 90), (90, 120), (200, 150), (64, 64)]):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(jpeg(photo(*size, seed=i)))
    transform = ImageTransform(tiny_clip.cfg, ON_CPU)
    _, pixels, _ = _device_pixels(transform, paths)
    ours = tiny_clip.embed_pixels(pixels)
    pillow = tiny_clip.embed_pixels(torch.stack([ImageTransform(tiny_clip.cfg, DecodeConfig(exact=True))(p)
                                                 for p in paths]))
    cos = (ours * pillow).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(pillow, axis=1)
    assert cos.min() >= 0.999


@pytest.mark.parametrize("mode", sorted(bd.MODES))
def test_both_resizes_agree_with_pil(mode):
    """PIL's resize within 2 grey levels: 0.01 on average with the 8-bit kernels (the CPU's), 0.25 in float
    (CUDA's: PIL rounds between its two passes, float does not)."""
    img = photo(301, 203)
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None]
    for size in [(64, 96), (300, 450)]:  # down and up
        pil = np.asarray(img.resize(size[::-1], {"bicubic": Image.Resampling.BICUBIC, "bilinear":
                                                 Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}[mode]))
        for eight_bit in (True, False):
            got = bd.resize(x, size, bd.MODES[mode], eight_bit)[0].permute(1, 2, 0).numpy()
            diff = np.abs(got.astype(np.float32) - pil)
            assert diff.max() <= 2 and diff.mean() < (0.01 if eight_bit else 0.25), (mode, size, eight_bit)


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_upright_matches_pil_for_every_orientation(orientation):
    img = photo(7, 5)
    expected = np.asarray(img.transpose(UPRIGHT[orientation])).transpose(2, 0, 1)
    got = bd.upright(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1), orientation)
    assert np.array_equal(got.numpy(), expected)


def test_exif_orientation_6_gives_the_upright_twin(tmp_path, decoder):
    upright = photo(96, 64)
    (tmp_path / "upright.jpg").write_bytes(jpeg(upright, quality=100, subsampling=0))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: turning it 90 degrees clockwise makes it upright
    (tmp_path / "turned.jpg").write_bytes(jpeg(upright.transpose(Image.Transpose.ROTATE_90), quality=100,
                                               subsampling=0, exif=exif.tobytes()))
    transform = ImageTransform(CFG, ON_CPU)
    staged = transform.stage(tmp_path / "turned.jpg")
    assert isinstance(staged, EncodedJpeg) and staged.orientation == 6
    _, pixels, _ = _device_pixels(transform, [tmp_path / "upright.jpg", tmp_path / "turned.jpg"])
    assert _grey_levels(pixels[0], pixels[1]).mean() < 0.5
    pillow = ImageTransform(CFG, DecodeConfig(exact=True))(tmp_path / "turned.jpg")  # Pillow turns it too
    assert _grey_levels(pixels[1], pillow).mean() < 1.0
    _, as_stored, _ = transform.finish(StagedBatch.of([0], [staged._replace(orientation=1)]))
    assert _grey_levels(as_stored[0], pixels[0]).mean() > 5  # the turn is what makes them agree


def test_headers_are_checked_in_the_worker_before_any_decoding(tmp_path):
    Image.new("RGB", (40000, 1)).save(tmp_path / "strip.jpg")
    Image.new("RGB", (40000, 1)).save(tmp_path / "strip.png")
    Image.new("L", (2000, 1000)).save(tmp_path / "bomb.png")
    data = bytearray(jpeg(photo(64, 48)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2  # the header claims 60000 x 60000 pixels
    (tmp_path / "bomb.jpg").write_bytes(bytes(data))
    transform = ImageTransform(CFG, ON_CPU)
    for name in ("strip.jpg", "strip.png"):
        with pytest.raises(ImageShapeError, match=rf"{name}: image 40000x1 .* over the 20:1 limit"):
            transform.stage(tmp_path / name)
    with pytest.raises(ImageTooLargeError, match="bomb.png: image 2000x1000 pixels exceeds"):
        transform.stage(tmp_path / "bomb.png", max_pixels=1_000_000)
    with pytest.raises(ImageTooLargeError, match="bomb.jpg: image exceeds the .*-pixel limit"):
        transform.stage(tmp_path / "bomb.jpg")


def test_other_files_are_decoded_by_pillow_in_the_worker(tmp_path):
    img = photo(80, 60)
    img.save(tmp_path / "a.png")
    img.convert("CMYK").save(tmp_path / "cmyk.jpg")
    good = jpeg(img)
    (tmp_path / "truncated.jpg").write_bytes(good[:len(good) // 2])
    transform = ImageTransform(CFG, ON_CPU)
    for name in ("a.png", "cmyk.jpg"):
        x = transform.stage(tmp_path / name)
        assert isinstance(x, torch.Tensor) and torch.equal(x, ImageTransform(CFG)(tmp_path / name))
    with pytest.raises(CorruptImageError, match="truncated.jpg: not a readable image: truncated"):
        transform.stage(tmp_path / "truncated.jpg")  # no end-of-image marker: Pillow's check, Pillow's error
    staged = transform.stage(good, name="shard.tar#1.jpg")  # bytes (a shard member) are handed on too
    assert isinstance(staged, EncodedJpeg) and staged.path is None and staged.label == "shard.tar#1.jpg"


def test_a_member_that_fails_becomes_its_own_one_line_failure(tmp_path, monkeypatch, decoder):
    good = [tmp_path / f"{i}.jpg" for i in range(3)]
    for i, path in enumerate(good):
        path.write_bytes(jpeg(photo(90, 60, seed=i)))
    (tmp_path / "broken.jpg").write_bytes(without_quantisation_tables(jpeg(photo(90, 60))))
    transform = ImageTransform(CFG, ON_CPU)
    keys, pixels, failures = _device_pixels(transform, [good[0], tmp_path / "broken.jpg", good[1], good[2]])
    assert keys == [0, 2, 3] and pixels.shape == (3, 3, 64, 64)
    [(key, message)] = failures
    assert key == 1 and "broken.jpg: not a readable image: truncated or corrupt" in message and "\n" not in message
    alone = transform.finish(StagedBatch.of([0], [transform.stage(good[1])]))[1]
    assert torch.equal(pixels[1], alone[0])  # the others decoded as they would be on their own


def test_a_jpeg_torchvision_refuses_is_decoded_by_pillow(tmp_path, monkeypatch, decoder):
    paths = [tmp_path / f"{i}.jpg" for i in range(3)]
    for i, path in enumerate(paths):
        path.write_bytes(jpeg(photo(90, 60, seed=i)))
    spy = use_decoder(monkeypatch, decoder, wrap=refusing(paths[1].read_bytes()))
    transform = ImageTransform(CFG, ON_CPU)
    keys, pixels, failures = _device_pixels(transform, paths)
    assert keys == [0, 1, 2] and failures == []
    assert torch.equal(pixels[1], ImageTransform(CFG)(paths[1]))  # the refused one: decoded by Pillow
    assert len(spy.seen) == 3 + 3  # the batch once, then each member alone


def test_a_batch_without_jpegs_never_needs_torchvision(tmp_path, monkeypatch):
    monkeypatch.setattr(bd, "jpeg_decoder", lambda device: pytest.fail("decoder asked for"))
    photo(80, 60).save(tmp_path / "a.png")
    transform = ImageTransform(CFG, ON_CPU)
    keys, pixels, failures = _device_pixels(transform, [tmp_path / "a.png"])
    assert keys == [0] and failures == [] and torch.equal(pixels[0], ImageTransform(CFG)(tmp_path / "a.png"))


def test_unusable_decoders_are_one_line_errors(monkeypatch):
    torchvision_io = pytest.importorskip("torchvision.io")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available here; use --decode-device cpu") as info:
            ImageTransform(CFG, DecodeConfig(device="cuda")).check_device()
        assert "\n" not in str(info.value)

    def broken(*args, **kwargs):
        raise RuntimeError("Couldn't load the image extension. If you built torchvision from source, ...")

    monkeypatch.setattr(torchvision_io, "decode_jpeg", broken)
    bd.jpeg_decoder.cache_clear()
    try:
        with pytest.raises(InputError, match="image ops do not load beside torch .*install the torchvision release "
                                             "built for this torch") as info:
            ImageTransform(CFG, ON_CPU).check_device()
        assert "\n" not in str(info.value) and "leave out --decode-device" in str(info.value)
    finally:
        bd.jpeg_decoder.cache_clear()
    with pytest.raises(InputError, match="no lanczos filter"):
        ImageTransform(BackboneCfg(source="t", embed_dim=8, image_size=64, interpolation="lanczos"),
                       ON_CPU).check_device()
    ImageTransform(CFG).check_device()  # no decode device: nothing to check


def test_bytes_fallback_names_the_member(monkeypatch):
    use_decoder(monkeypatch, "stand-in")
    bad = without_quantisation_tables(jpeg(photo(90, 60)))
    transform = ImageTransform(CFG, ON_CPU)
    _, pixels, [(key, message)] = _device_pixels(transform, [io.BytesIO(bad).getvalue()])
    assert pixels is None and key == 0 and message.startswith("image: not a readable image")
    staged = transform.stage(bad, name="s.tar#7.jpg")
    [(_, message)] = transform.finish(StagedBatch.of(["k"], [staged]))[2]
    assert message.startswith("s.tar#7.jpg: not a readable image") and "send the complete file" in message
