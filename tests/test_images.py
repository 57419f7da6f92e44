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
