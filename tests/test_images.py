"""Safe image loading: every bad input is a one-line InputError naming the file; every mode becomes RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pigeon import images
from pigeon.errors import InputError
from pigeon.images import load_image


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path, quality=95)
    return path


def _one_line_error(match, fn, *args, **kwargs) -> str:
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_rgb_jpeg_loads_fully_decoded(photo):
    img = load_image(photo)
    assert img.mode == "RGB" and img.size == (64, 48)
    assert np.asarray(img).shape == (48, 64, 3)


def test_missing_file(tmp_path):
    msg = _one_line_error("not found", load_image, tmp_path / "nope.jpg")
    assert "nope.jpg" in msg and "path" in msg


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(b"this is not an image at all")
    msg = _one_line_error("not a readable image", load_image, path)
    assert "corrupt.jpg" in msg and "re-export" in msg


def test_truncated_jpeg(tmp_path, photo):
    path = tmp_path / "truncated.jpg"
    path.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    msg = _one_line_error("truncated or corrupt", load_image, path)
    assert "truncated.jpg" in msg


def test_decompression_bomb_guard_per_call_and_global(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (2000, 1000)).save(path)  # 2 Mpx, a few KB on disk
    msg = _one_line_error("exceeds", load_image, path, max_pixels=1_000_000)
    assert "big.png" in msg and "2000x1000" in msg and "set_max_pixels" in msg
    default = images.get_max_pixels()
    try:
        images.set_max_pixels(1_000_000)
        _one_line_error("decompression-bomb", load_image, path)
        images.set_max_pixels(None)
        assert load_image(path).size == (2000, 1000)
    finally:
        images.set_max_pixels(default)


def test_pil_own_guard_is_reported_as_input_error(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (300, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # PIL raises above 2x this, before our check
    _one_line_error("decompression-bomb", load_image, path, max_pixels=10**9)


def test_invalid_limit():
    _one_line_error("positive", images.set_max_pixels, 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    img = load_image(path)
    assert img.mode == "RGB"
    r, g, b = np.asarray(img).reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_png_alpha_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = (255, 0, 0, 255)  # opaque red left half, fully transparent black right half
    Image.fromarray(rgba, "RGBA").save(path)
    px = np.asarray(load_image(path))
    assert (px[:, :2] == (255, 0, 0)).all() and (px[:, 2:] == 255).all()


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "pal.png"
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    img.save(path, transparency=1)  # index 1 (blue) transparent -> white
    assert (np.asarray(load_image(path)) == 255).all()


@pytest.mark.parametrize("mode,value", [("L", 128), ("1", 1), ("I;16", 40000)])
def test_greyscale_and_16bit(tmp_path, mode, value):
    path = tmp_path / f"grey_{mode.replace(';', '')}.png"
    arr = np.full((5, 6), value, np.uint16 if mode == "I;16" else np.uint8)
    arr[0, 0] = 0
    img = {"L": Image.fromarray(arr), "1": Image.fromarray(arr.astype(bool)), "I;16": Image.fromarray(arr)}[mode]
    assert img.mode == mode
    img.save(path)
    px = np.asarray(load_image(path))
    assert px.shape == (5, 6, 3)
    assert (px[..., 0] == px[..., 1]).all() and px[0, 0, 0] == 0 and px[1, 1, 0] > 100


def test_one_pixel_image(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    assert np.asarray(load_image(path)).tolist() == [[[10, 20, 30]]]


def test_exif_orientation_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_pil_input_is_converted_not_reloaded():
    img = Image.new("LA", (3, 2), (0, 0))
    out = load_image(img)
    assert out.mode == "RGB" and (np.asarray(out) == 255).all()
    rgb = Image.new("RGB", (3, 2))
    assert load_image(rgb) is rgb


# ------------------------------------------------ encoded bytes (uploads to the service)
def test_bytes_load_like_the_file(photo):
    assert np.array_equal(np.asarray(load_image(photo.read_bytes())), np.asarray(load_image(photo)))


def test_bytes_errors_name_the_upload_and_the_fix(tmp_path, photo):
    from pigeon.images import ImageTooLargeError, UnreadableImageError

    with pytest.raises(UnreadableImageError, match=r"^files\[0\]: not a readable image") as info:
        load_image(b"plain text", name="files[0]")
    assert "manifest" not in str(info.value)
    data = photo.read_bytes()
    with pytest.raises(InputError, match="truncated or corrupt.*send the complete file"):
        load_image(data[: len(data) // 2], name="upload")
    big = tmp_path / "big.png"
    Image.new("L", (2000, 1000)).save(big)
    with pytest.raises(ImageTooLargeError, match="2000x1000.*downscale it before sending"):
        load_image(big.read_bytes(), max_pixels=1_000_000)


def test_formats_are_checked_from_the_content(tmp_path):
    png = tmp_path / "really_a_png.jpg"
    Image.new("RGB", (8, 8)).save(png, "PNG")
    assert load_image(png.read_bytes(), formats=("PNG",)).size == (8, 8)
    from pigeon.images import UnreadableImageError

    with pytest.raises(UnreadableImageError, match="not a JPEG image"):
        load_image(png.read_bytes(), formats=("JPEG",))
    with pytest.raises(UnreadableImageError):
        load_image(png, formats=("JPEG",))


# ------------------------------------------------ bounded decoding (draft / reduce, shape, every decoder error)
from tests.support.hostile import SECONDS_PER_FILE, corpus, photo_like  # noqa: E402

def _encoded(img: Image.Image, fmt: str, **options) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("gap", [1.0, 2.0])
def test_decoding_stops_at_the_smallest_size_above_the_target(fmt, gap):
    from pigeon.images import DecodeConfig, open_image

    data = _encoded(photo_like((2400, 1800)), fmt)
    pending = open_image(data, target=224, decode=DecodeConfig(reducing_gap=gap))
    img = pending.load()
    floor = 224 * gap
    assert floor <= min(img.size) < 2 * floor, img.size  # never below the target, never twice more than needed
    if fmt == "JPEG":  # draft mode: decoding itself allocates only that (libjpeg's DCT scaling)
        assert pending.decoded_size == img.size and pending.pixels == img.width * img.height
    else:  # other formats decode whole (within the pixel limit), then reduce
        assert pending.decoded_size == (2400, 1800)
    exact = open_image(data, target=224, decode=DecodeConfig(exact=True))
    assert exact.load().size == (2400, 1800) and exact.pixels == 2400 * 1800


def test_small_images_decode_the_same_either_way():
    from pigeon.images import DecodeConfig, load_image

    data = _encoded(photo_like((600, 450)), "JPEG")  # under twice the reducing target: nothing to skip
    fast = np.asarray(load_image(data, target=256))
    assert np.array_equal(fast, np.asarray(load_image(data, target=256, decode=DecodeConfig(exact=True))))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_fast_path_agrees_with_the_exact_one(fmt):
    """The model input from draft / reduce decoding is within a few grey levels of the exact path's on average."""
    from pigeon.backbones import ImageTransform
    from pigeon.backbones._config import BackboneCfg
    from pigeon.images import DecodeConfig

    cfg = BackboneCfg(source="test", embed_dim=8, image_size=224, crop_pct=0.875)
    data = _encoded(photo_like((3000, 2000), seed=3), fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    fast = ImageTransform(cfg)(data)
    exact = ImageTransform(cfg, DecodeConfig(exact=True))(data)
    assert fast.shape == exact.shape == (3, 224, 224)
    diff = (fast - exact).abs() * 0.226 * 255  # back to grey levels (std of ImageNet normalisation)
    assert float(diff.mean()) < 1.5 and float(diff.max()) < 40


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_on_both_paths(fmt):
    from pigeon.images import DecodeConfig, load_image

    stored = photo_like((1600, 800))  # stored wide; orientation 6 says it is displayed tall
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encoded(stored, fmt, exif=exif)
    exact = load_image(data, target=128, decode=DecodeConfig(exact=True))
    fast = load_image(data, target=128)
    assert exact.size == (800, 1600) and fast.size[0] < fast.size[1]
    assert fast.size[0] >= 256
    expected = stored.transpose(Image.Transpose.ROTATE_270).resize(fast.size, Image.Resampling.BOX)
    assert np.abs(np.asarray(fast, float) - np.asarray(expected, float)).mean() < 6  # the same way up


def test_extreme_aspect_ratios_are_refused_before_decoding(tmp_path):
    from pigeon.images import DecodeConfig, ImageShapeError, load_image, open_image

    for size in [(40000, 1), (1, 40000), (2100, 100)]:
        path = tmp_path / f"strip_{size[0]}x{size[1]}.png"
        Image.new("L", size).save(path)
        with pytest.raises(ImageShapeError, match=rf"{size[0]}x{size[1]} has an aspect ratio of .*over the 20:1") as e:
            open_image(path)
        assert "crop it" in str(e.value) and path.name in str(e.value) and "\n" not in str(e.value)
    assert load_image(tmp_path / "strip_2100x100.png", decode=DecodeConfig(max_aspect_ratio=25)).size == (2100, 100)
    with pytest.raises(ImageShapeError):
        load_image(Image.new("RGB", (500, 10)))  # a PIL image is held to the same limit
    with pytest.raises(InputError, match="max_aspect_ratio"):
        DecodeConfig(max_aspect_ratio=0.5)


def test_pil_input_is_reduced_to_the_target():
    from pigeon.images import load_image

    out = load_image(photo_like((2000, 1000)), target=100)
    assert out.size == (400, 200)  # reduce(5): the short side >= 2 x 100 (the reducing gap), below twice that


def test_every_decoder_error_is_one_clean_line(monkeypatch):
    """Whatever Pillow's decoders raise becomes a one-line 'not a readable image' with the reason."""
    import struct

    from PIL import ImageFile

    from pigeon.images import CorruptImageError, load_image

    data = _encoded(photo_like((64, 48)), "PNG")
    for error in (ValueError("Decompressed data too large"), SyntaxError("broken PNG file"), struct.error("unpack"),
                  EOFError(), OSError("decoder error -2"), IndexError("tile"), Image.DecompressionBombError("bomb")):
        def boom(self, error=error):
            raise error

        monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
        with pytest.raises(CorruptImageError, match=r"^upload: not a readable image: truncated or corrupt") as info:
            load_image(data, name="upload")
        assert "\n" not in str(info.value)
    monkeypatch.undo()
    monkeypatch.setattr(Image, "open", lambda *a, **k: (_ for _ in ()).throw(struct.error("bad chunk")))
    with pytest.raises(CorruptImageError, match="its header cannot be read .bad chunk."):
        load_image(data, name="upload")


# ------------------------------------------------------------------ the hostile corpus, one file at a time

@pytest.mark.parametrize("item", corpus(), ids=lambda h: h.name)
def test_hostile_inputs_are_refused_or_bounded(item):
    import time

    from pigeon.images import open_image

    start = time.perf_counter()
    if item.readable:
        pending = open_image(item.data, target=256, name=item.name)
        img = pending.load()
        assert img.mode == "RGB" and min(img.size) < 4 * 256  # at most twice the reducing gap x the target
    else:
        with pytest.raises(InputError) as info:
            open_image(item.data, target=256, name=item.name).load()
        assert str(info.value).startswith(item.name) and "\n" not in str(info.value)
    assert time.perf_counter() - start < SECONDS_PER_FILE, item.why


def test_oversized_exif_is_ignored_not_parsed():
    from pigeon.images import MAX_EXIF_BYTES, load_image

    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned: a parsed EXIF makes the 60x30 image 30x60
    small = _encoded(Image.new("RGB", (60, 30)), "PNG", exif=exif.tobytes())
    padded = _encoded(Image.new("RGB", (60, 30)), "PNG", exif=exif.tobytes() + bytes(MAX_EXIF_BYTES))
    assert load_image(small).size == (30, 60)
    assert load_image(padded).size == (60, 30)  # megabytes of crafted IFDs would hold the interpreter for seconds
