"""WebDataset shards: manifest -> shards -> embed equals manifest -> embed; bounded, resumable, exportable."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pigeon.data import write_manifest
from pigeon.data.shards import expand_shards, import_shards, write_shards
from pigeon.embed import Embeddings, embed_manifest, embed_shards_from, export_shards
from pigeon.embed import _wds
from pigeon.errors import InputError
from tests.support import assert_clean_error

FP16 = dict(rtol=2e-3, atol=2e-3)  # float16 storage


def _tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _jpeg(seed: int, size=(56, 40)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        buf, "JPEG")
    return buf.getvalue()


def test_shards_round_trip_gives_the_same_embeddings(tiny_clip, photos, tmp_path):
    df = photos(10)  # multi-view rows included
    shards = write_shards(df, tmp_path / "shards", size=4)
    assert shards.n_shards == 3 and shards.n_rows == 10 and shards.pattern.endswith("shard-{000000..000002}.tar")
    index = pd.read_parquet(tmp_path / "shards/index.parquet")
    assert index["id"].tolist() == df["id"].tolist() and index["shard"].iat[5] == "shard-000001.tar"
    assert index["n_views"].tolist() == [3 if r % 3 == 2 else 1 for r in range(10)]
    meta = json.loads((tmp_path / "shards/meta.json").read_text())
    assert meta["kind"] == "shards" and meta["complete"] and meta["config"]["size"] == 4 and "versions" in meta

    direct = embed_manifest(df, tiny_clip, tmp_path / "direct", batch_size=3, num_workers=0)
    from_shards = embed_shards_from(shards.pattern, tiny_clip, tmp_path / "from", batch_size=3, num_workers=0)
    assert list(from_shards.ids) == list(direct.ids) and from_shards.n_views.tolist() == direct.n_views.tolist()
    np.testing.assert_allclose(from_shards.get(direct.ids), direct.get(direct.ids), **FP16)
    for a, b in zip(from_shards.get_views(direct.ids), direct.get_views(direct.ids)):
        np.testing.assert_allclose(a, b, **FP16)
    rows = pd.read_parquet(tmp_path / "from/manifest.parquet")  # ready for pigeon train
    np.testing.assert_allclose(rows[["lat", "lon"]].to_numpy(), df[["lat", "lon"]].to_numpy())
    assert rows["image"].iat[2][1].endswith("shard-000000.tar#000000002.1.jpg")

    workers = embed_shards_from(tmp_path / "shards", tiny_clip, tmp_path / "workers", batch_size=3, num_workers=2)
    np.testing.assert_array_equal(workers.get(direct.ids), from_shards.get(direct.ids))  # the folder works too


def test_pre_resized_shards_hold_small_jpegs(photos, tmp_path):
    df = photos(3)
    big = tmp_path / "img/0_0.jpg"
    Image.new("RGB", (900, 600), (200, 10, 10)).save(big)
    write_shards(df, tmp_path / "shards", size=10, resize=32)
    with tarfile.open(tmp_path / "shards/shard-000000.tar") as tar:
        img = Image.open(tar.extractfile("000000000.jpg"))
        assert img.size == (48, 32) and img.format == "JPEG"


def test_bad_members_and_a_truncated_shard_are_failures(tiny_clip, tmp_path):
    meta = lambda i: json.dumps({"id": f"s{i}", "lat": 1.0 * i, "lon": 2.0}).encode()  # noqa: E731
    _tar(tmp_path / "a.tar", {"0.jpg": _jpeg(0), "0.json": meta(0),
                              "1.jpg": b"not an image", "1.json": meta(1),
                              "2.jpg": _jpeg(2, (400, 300)), "2.json": meta(2),
                              "3.jpg": _jpeg(3), "3.json": meta(3)})
    _tar(tmp_path / "full_b.tar", {"4.jpg": _jpeg(4), "4.json": meta(4), "5.jpg": _jpeg(5), "5.json": meta(5)})
    data = (tmp_path / "full_b.tar").read_bytes()
    (tmp_path / "b.tar").write_bytes(data[:data.index(_jpeg(5)) + 100])  # ends inside the last image
    emb = embed_shards_from(str(tmp_path / "{a,b}.tar"), tiny_clip, tmp_path / "emb", num_workers=0,
                            max_member_bytes=len(_jpeg(0)) + 500)  # member 2 is over the limit
    assert list(emb.ids) == ["s0", "s3", "s4"]
    failed = emb.failed
    by_shard = failed.assign(shard=failed["image"].str.extract(r"([ab])\.tar#")[0])
    a = by_shard[by_shard["shard"] == "a"]
    assert a["image"].str.endswith(("#1.jpg", "#2.jpg")).sum() == 2 and len(a) == 2
    assert a["error"].str.contains("not a readable image").sum() == 1
    assert a["error"].str.contains("exceeds the").sum() == 1
    b = by_shard[by_shard["shard"] == "b"]
    assert b["image"].tolist() == [f"{tmp_path}/b.tar#5.jpg"] and b["error"].str.contains("truncated").all()


def test_shard_reading_is_bounded(tmp_path, monkeypatch):
    from pigeon.data import shards

    entries = json.dumps({f"k{i}": i for i in range(200_000)}).encode()  # a 2.6 MB metadata member
    _tar(tmp_path / "a.tar", {"0.jpg": _jpeg(0), "0.json": entries, **{f"{i}.txt": b"1,2" for i in range(1, 6)}})
    [first, *rest] = list(shards.iter_shard(str(tmp_path / "a.tar")))
    assert "json" not in first.members and "exceeds the 1,048,576-byte limit" in first.problems[0][1]
    monkeypatch.setattr(shards, "MAX_SAMPLES_PER_SHARD", 3)
    samples = list(shards.iter_shard(str(tmp_path / "a.tar")))
    assert len(samples) == 4 and "more than 3 samples" in samples[-1].problems[0][1]
    assert shards.sample_row(samples[1]).fields == {"lat": 1.0, "lon": 2.0, "id": "1"}


def test_a_repeated_id_is_embedded_once_and_listed(tiny_clip, tmp_path):
    meta = json.dumps({"id": "same", "lat": 1.0, "lon": 2.0}).encode()
    _tar(tmp_path / "0.tar", {"x.jpg": _jpeg(0), "x.json": meta})
    _tar(tmp_path / "1.tar", {"y.jpg": _jpeg(1), "y.json": meta})
    emb = embed_shards_from(str(tmp_path / "{0..1}.tar"), tiny_clip, tmp_path / "emb", num_workers=0)
    assert list(emb.ids) == ["same"]
    np.testing.assert_allclose(emb.get(["same"])[0], tiny_clip.embed(Image.open(io.BytesIO(_jpeg(0))))[0], **FP16)
    assert emb.failed["error"].str.contains("repeated id").tolist() == [True]


def test_resuming_an_interrupted_shard_run_embeds_each_sample_once(tiny_clip, photos, tmp_path, monkeypatch):
    df = photos(9)
    shards = write_shards(df, tmp_path / "shards", size=3)
    full = embed_shards_from(shards.pattern, tiny_clip, tmp_path / "full", batch_size=2, num_workers=0)

    real = _wds.write_shard
    written: list[str] = []

    def killed_after_first(path, *args, **kw):
        if written:
            raise KeyboardInterrupt
        real(path, *args, **kw)
        written.append(path.name)

    monkeypatch.setattr(_wds, "write_shard", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        embed_shards_from(shards.pattern, tiny_clip, tmp_path / "part", batch_size=2, num_workers=0)
    seen: list[str] = []
    real_transform = tiny_clip.transform

    class Counting:
        def __call__(self, data):
            seen.append(data)
            return real_transform(data)

    monkeypatch.setattr(_wds, "write_shard", real)
    monkeypatch.setattr(tiny_clip, "transform", Counting())
    part = embed_shards_from(shards.pattern, tiny_clip, tmp_path / "part", batch_size=2, num_workers=0)
    assert len(seen) == int(full.n_views[3:].sum())  # shard 0 (rows 0-2) was not read again
    assert list(part.ids) == list(full.ids)
    np.testing.assert_array_equal(part.get(part.ids), full.get(full.ids))


def test_exported_store_reads_with_plain_webdataset(tiny_clip, photos, tmp_path):
    import webdataset as wds

    df = photos(5)
    emb = embed_manifest(df, tiny_clip, tmp_path / "emb", num_workers=0)
    paths = export_shards(emb, tmp_path / "wds", size=2, manifest=df)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    samples = list(wds.WebDataset(str(tmp_path / "wds/shard-{000000..000002}.tar"), shardshuffle=False).decode())
    assert [s["json"]["id"] for s in samples] == list(emb.ids)
    np.testing.assert_allclose(np.stack([s["npy"] for s in samples]), emb.get(emb.ids), rtol=1e-6)
    assert samples[2]["views.npy"].shape == (3, emb.dim) and "views.npy" not in samples[0]
    assert samples[1]["json"]["lat"] == pytest.approx(df["lat"].iat[1])


def test_osv5m_wds_layout_imports_as_a_manifest(tmp_path):
    (tmp_path / "train").mkdir()
    row = {"id": 3859149887465501, "latitude": -43.8, "longitude": -176.6, "country": "NZ", "region": "Chatham",
           "city": "Waitangi", "captured_at": 1500000000, "quadtree_10_1000": 4}
    _tar(tmp_path / "train/0000.tar", {"a.jpg": _jpeg(0), "a.json": json.dumps(row).encode(),
                                       "b.jpg": _jpeg(1), "b.json": json.dumps({**row, "id": 7}).encode()})
    df = import_shards(str(tmp_path / "train/{0000..0000}.tar"), "osv5m-wds")
    assert df["id"].tolist() == ["3859149887465501", "7"] and df["split"].tolist() == ["train", "train"]
    assert df["lat"].iat[0] == -43.8 and df["country"].iat[0] == "NZ" and "quadtree_10_1000" not in df
    assert df["image"].iat[1].endswith("train/0000.tar#b.jpg") and "taken_at" in df


def test_bad_patterns_and_urls_are_one_line_errors(cli, photos, tmp_path):
    write_manifest(photos(2), tmp_path / "m.csv")
    assert_clean_error(cli("embed", str(tmp_path / "s/{000..001.tar"), "-o", tmp_path / "e"), "unbalanced braces")
    assert_clean_error(cli("embed", str(tmp_path / "s/{000..001}.tar"), "-o", tmp_path / "e"),
                       "2 of 2 shard(s) not found")
    assert_clean_error(cli("embed", "nosuchproto://bucket/{0..3}.tar", "-o", tmp_path / "e"), "nosuchproto")
    assert_clean_error(cli("embed", str(tmp_path / "{0..9999999}.tar"), "-o", tmp_path / "e"), "more than")
    assert_clean_error(cli("data", "import", str(tmp_path / "x/{0..1}.tar"), "--format", "osv5m-wds",
                           "-o", tmp_path / "m.parquet"), "not found")
    with pytest.raises(InputError, match="not a .tar shard"):
        expand_shards([str(tmp_path / "m.csv")])


def test_cli_shard_then_embed_then_export(cli, tiny_clip_dir, photos, tmp_path):
    df = photos(4)
    write_manifest(df, tmp_path / "m.parquet")
    res = cli("data", "shard", tmp_path / "m.parquet", "-o", tmp_path / "shards", "--size", "3", "--resize", "64")
    assert res.exit_code == 0, res
    assert "wrote 4 of 4 rows as 2 shard(s)" in res.stdout
    res = cli("embed", str(tmp_path / "shards/shard-{000000..000001}.tar"), "-o", tmp_path / "emb",
              "--backbone", f"clip:{tiny_clip_dir}", "--workers", "0")
    assert res.exit_code == 0, res
    assert "embedded 4 of 4 rows (6 images)" in res.stdout
    res = cli("data", "shard", tmp_path / "emb", "-o", tmp_path / "wds", "--size", "10")
    assert res.exit_code == 0 and "1 shard(s) of .npy + .json" in res.stdout, res
    assert Embeddings.load(tmp_path / "emb").meta["config"]["input_shards"] == 2
