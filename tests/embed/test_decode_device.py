"""Embedding with JPEGs decoded in batches on a torch device (``DecodeConfig(device=...)``, ``--decode-device``):
complete results (PNGs fall back to Pillow, bad files are failures), the setting recorded and resumed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pigeon.data.shards import write_shards
from pigeon.embed import Embeddings, embed_manifest, embed_shards_from
from pigeon.errors import InputError
from pigeon.images import DecodeConfig
from tests.support import assert_clean_error
from tests.support.jpeg import DECODERS, jpeg, photo, use_decoder, without_quantisation_tables

ON_CPU = DecodeConfig(device="cpu")


@pytest.fixture(params=DECODERS)
def decoder(request, monkeypatch) -> str:
    use_decoder(monkeypatch, request.param)
    return request.param


@pytest.fixture
def clip(tiny_clip_dir):
    """The tiny CLIP, loaded for this test (embedding with ``decode=`` sets the backbone's decoding)."""
    from pigeon.backbones import load

    return load(f"clip:{tiny_clip_dir}", device="cpu")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _mixed(photos, tmp_path):
    """A manifest of photos (larger than the model's input, for a real resize) with a PNG, a corrupt JPEG (its
    header reads), a truncated JPEG and a 40000x1 strip among them."""
    df = photos(8)
    for r in range(8):
        for v in range(3 if r % 3 == 2 else 1):
            (tmp_path / f"img/{r}_{v}.jpg").write_bytes(jpeg(photo(120 + 8 * r, 90, seed=10 * r + v)))
    photo(100, 80, seed=99).save(tmp_path / "img/png.jpg", format="PNG")  # a PNG under a .jpg name
    (tmp_path / "img/0_0.jpg").replace(tmp_path / "img/kept.jpg")
    (tmp_path / "img/0_0.jpg").write_bytes(without_quantisation_tables(jpeg(photo(90, 60))))
    good = jpeg(photo(90, 60, seed=5))
    (tmp_path / "img/1_0.jpg").write_bytes(good[:len(good) // 2])
    Image.new("RGB", (40000, 1)).save(tmp_path / "img/3_0.jpg")
    df.at[4, "image"] = "img/png.jpg"
    return df


def test_manifest_embeds_completely_and_agrees_with_pillow(clip, decoder, photos, tmp_path):
    df = _mixed(photos, tmp_path)
    pillow = embed_manifest(df, clip, tmp_path / "pillow", batch_size=4, num_workers=0, decode=DecodeConfig())
    emb = embed_manifest(df, clip, tmp_path / "device", batch_size=4, num_workers=1, decode=ON_CPU)
    assert list(emb.ids) == list(pillow.ids) == ["loc2", "loc4", "loc5", "loc6", "loc7"]
    assert emb.n_views.tolist() == [3, 1, 3, 1, 1]
    assert emb.failed[["id", "view"]].values.tolist() == [["loc0", 0], ["loc1", 0], ["loc3", 0]]
    errors = emb.failed["error"].tolist()
    assert "0_0.jpg: not a readable image: truncated or corrupt" in errors[0]  # decoded in the batch: failed alone
    assert "1_0.jpg: not a readable image: truncated" in errors[1] and "40000x1" in errors[2]
    assert all("\n" not in e for e in errors)
    assert _cosines(emb.get(emb.ids), pillow.get(emb.ids)).min() >= 0.999  # the PNG row: Pillow in both
    meta = emb.meta["config"]
    assert meta["decode_device"] == "cpu" and DecodeConfig.from_dict(meta["decode"]) == ON_CPU


def test_an_old_store_without_the_field_resumes(clip, photos, tmp_path, monkeypatch):
    df = photos(6)
    embed_manifest(df, clip, tmp_path / "emb", batch_size=4, num_workers=0, shard_size=2, decode=DecodeConfig())
    meta_path = tmp_path / "emb/meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["decode_device"], meta["config"]["decode"]["device"]  # as stores were written before
    meta_path.write_text(json.dumps(meta))
    old = Embeddings.load(tmp_path / "emb")  # loads
    assert len(old) == 6 and DecodeConfig.from_dict(old.meta["config"]["decode"]) == DecodeConfig()
    meta_path.write_text(json.dumps({**meta, "complete": False}))  # ... and, stopped half way, resumes
    (tmp_path / "emb/shards/shard-00002.safetensors").unlink()
    resumed = embed_manifest(df, clip, tmp_path / "emb", batch_size=4, num_workers=0, shard_size=2,
                             decode=DecodeConfig())
    assert len(resumed) == 6 and resumed.meta["complete"] and resumed.meta["config"]["decode_device"] is None
    use_decoder(monkeypatch, "stand-in")
    with pytest.raises(InputError, match="different decode_device; pass another output folder or --overwrite"):
        embed_manifest(df, clip, tmp_path / "emb", batch_size=4, num_workers=0, shard_size=2, decode=ON_CPU)


def test_shards_embed_with_a_decode_device(clip, decoder, photos, tmp_path):
    df = _mixed(photos, tmp_path)
    shards = write_shards(df, tmp_path / "shards", size=4)
    pillow = embed_shards_from(shards.pattern, clip, tmp_path / "pillow", batch_size=3, num_workers=0,
                               decode=DecodeConfig())
    emb = embed_shards_from(shards.pattern, clip, tmp_path / "device", batch_size=3, num_workers=2, decode=ON_CPU)
    assert list(emb.ids) == list(pillow.ids) and emb.n_views.tolist() == pillow.n_views.tolist()
    assert _cosines(emb.get(emb.ids), pillow.get(emb.ids)).min() >= 0.999
    failed = emb.failed.sort_values("id")
    assert failed[["id", "view"]].values.tolist() == pillow.failed.sort_values("id")[["id", "view"]].values.tolist()
    corrupt = failed["error"].iat[0]  # loc0: its header read, the batch's decode failed, so did Pillow's
    assert corrupt.startswith(f"{failed['image'].iat[0]}: not a readable image") and "shard-000000.tar#" in corrupt
    assert json.loads((tmp_path / "device/meta.json").read_text())["config"]["decode"]["device"] == "cpu"


def test_cli_decode_device(cli, photos, tmp_path, tiny_clip_dir, monkeypatch):
    from pigeon.data import write_manifest

    write_manifest(photos(3), tmp_path / "m.csv")
    base = ("embed", tmp_path / "m.csv", "--backbone", f"clip:{tiny_clip_dir}", "--workers", "0")
    assert_clean_error(cli(*base, "-o", tmp_path / "a", "--decode-device", "gpu"), "unknown decode device 'gpu'")
    import torch

    if not torch.cuda.is_available():
        assert_clean_error(cli(*base, "-o", tmp_path / "b", "--decode-device", "cuda"), "CUDA is not available here",
                           "--decode-device cpu")
    use_decoder(monkeypatch, "stand-in")
    res = cli(*base, "-o", tmp_path / "c", "--decode-device", "cpu")
    assert res.exit_code == 0, res
    assert Embeddings.load(tmp_path / "c").meta["config"]["decode"]["device"] == "cpu"
