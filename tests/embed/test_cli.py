"""``pigeon embed`` through the real entry point."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pigeon import images
from pigeon.data import write_manifest
from pigeon.embed import Embeddings
from tests.support import assert_clean_error


def test_embed_default_backbone_with_bomb_guard_and_split(cli, photos, tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_max_pixels", images.get_max_pixels())  # --max-pixels is process-wide
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    df = photos(4).assign(split=["train", "train", "train", "test"])
    Image.new("L", (1200, 1000)).save(tmp_path / "img/1_0.jpg")
    write_manifest(df, tmp_path / "m.csv")
    res = cli("embed", tmp_path / "m.csv", "-o", tmp_path / "emb", "--split", "train", "--batch-size", "2",
              "--workers", "1", "--max-pixels", "1000000", "--device", "cpu")
    assert res.exit_code == 0, res
    assert "embedded 2 of 3 rows (4 images) with efficientnet:lite0, dim 1280" in res.stdout
    assert "1 unreadable image(s) skipped" in res.stdout
    emb = Embeddings.load(tmp_path / "emb")
    assert list(emb.ids) == ["loc0", "loc2"] and "decompression-bomb" in emb.failed["error"][0]
    assert np.isfinite(emb.get(emb.ids)).all()


def test_embed_errors_are_one_line(cli, photos, tmp_path, tiny_clip_dir):
    write_manifest(photos(2), tmp_path / "m.csv")
    assert_clean_error(cli("embed", tmp_path / "nope.csv", "-o", tmp_path / "e"), "nope.csv")
    assert_clean_error(cli("embed", tmp_path / "m.csv", "-o", tmp_path / "e", "--backbone", "clip-vit"),
                       "unknown backbone")
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"")
    assert_clean_error(cli("embed", tmp_path / "m.csv", "-o", tmp_path / "e", "--backbone", f"timm:vit_b:{ckpt}"),
                       "unknown timm model 'vit_b'")  # timm comes with the models extra (in dev)
    ok = cli("embed", tmp_path / "m.csv", "-o", tmp_path / "e", "--backbone", f"clip:{tiny_clip_dir}",
             "--workers", "0")
    assert ok.exit_code == 0, ok
    assert_clean_error(cli("embed", tmp_path / "m.csv", "-o", tmp_path / "e", "--workers", "0"),
                       "different backbone", "--overwrite")
