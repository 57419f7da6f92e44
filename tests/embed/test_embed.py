"""The embedding store: values, multi-view averaging, failures, resumability, lazy loading, mismatches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from pigeon.embed import Embeddings, embed_manifest
from pigeon.embed import _extract
from pigeon.errors import ArtifactNotFoundError, InputError

FP16 = dict(rtol=2e-3, atol=2e-3)  # float16 storage


def test_vectors_match_the_backbone_and_views_are_averaged(tiny_clip, photos, tmp_path):
    df = photos(6)
    emb = embed_manifest(df, tiny_clip, tmp_path / "emb", batch_size=4, num_workers=0, shard_size=4)
    assert list(emb.ids) == list(df["id"]) and emb.dim == 32 and len(emb) == 6
    assert emb.backbone == tiny_clip.name and emb.cfg == tiny_clip.cfg
    root = df.attrs["root"]
    single = tiny_clip.embed([f"{root}/img/0_0.jpg", f"{root}/img/1_0.jpg"])
    np.testing.assert_allclose(emb.get(["loc0", "loc1"]), single, **FP16)
    views = tiny_clip.embed([f"{root}/img/2_{v}.jpg" for v in range(3)])
    [got] = emb.get_views("loc2")
    np.testing.assert_allclose(got, views, **FP16)
    np.testing.assert_allclose(emb.get("loc2")[0], views.mean(axis=0), **FP16)
    assert emb.get(["loc5", "loc0"]).dtype == np.float32
    np.testing.assert_array_equal(emb.get(["loc5", "loc0"]), emb.get(["loc0", "loc5"])[::-1])
    assert emb.n_views.tolist() == [1, 1, 3, 1, 1, 3]
    with safe_open(str(tmp_path / "emb/shards/shard-00000.safetensors"), framework="numpy") as f:
        assert f.get_slice("mean").get_dtype() == "F16" and f.get_slice("views").get_shape() == [6, 32]


def test_same_image_gives_the_same_vector(tiny_clip, photos, tmp_path):
    df = photos(3)
    df.loc[1, "image"] = df.loc[0, "image"]
    emb = embed_manifest(df, tiny_clip, tmp_path / "emb", batch_size=3, num_workers=0)
    a, b = emb.get(["loc0", "loc1"])
    np.testing.assert_array_equal(a, b)


def test_unreadable_images_are_reported_and_skipped(tiny_clip, photos, tmp_path):
    df = photos(6)
    root = tmp_path
    (root / "img/0_0.jpg").write_bytes(b"garbage")
    data = (root / "img/1_0.jpg").read_bytes()
    (root / "img/1_0.jpg").write_bytes(data[: len(data) // 2])
    (root / "img/2_1.jpg").unlink()  # one view of a 3-view row
    Image.new("RGB", (1, 1)).save(root / "img/3_0.jpg")  # tiny but valid
    emb = embed_manifest(df, tiny_clip, tmp_path / "emb", batch_size=4, num_workers=0, shard_size=4)
    assert list(emb.ids) == ["loc2", "loc3", "loc4", "loc5"]
    assert emb.n_views.tolist() == [2, 1, 1, 3]
    failed = emb.failed
    assert failed[["id", "view"]].values.tolist() == [["loc0", 0], ["loc1", 0], ["loc2", 1]]
    assert failed["error"].str.contains("not a readable image|truncated|not found").all()
    assert emb.meta["n_failed_rows"] == 2 and emb.meta["n_failed_images"] == 3
    with pytest.raises(InputError, match="failed.csv"):
        emb.get(["loc0"])


def test_resume_after_a_kill_equals_an_uninterrupted_run(tiny_clip, photos, tmp_path, monkeypatch):
    df = photos(10)
    kw = dict(batch_size=3, num_workers=0, shard_size=4)
    full = embed_manifest(df, tiny_clip, tmp_path / "full", **kw)

    written = []
    real_write = _extract.write_shard

    def killed_after_first_shard(path, *args):
        if written:
            raise KeyboardInterrupt  # the process dies while the second shard is being made
        real_write(path, *args)
        written.append(path.name)

    monkeypatch.setattr(_extract, "write_shard", killed_after_first_shard)
    with pytest.raises(KeyboardInterrupt):
        embed_manifest(df, tiny_clip, tmp_path / "part", **kw)
    shards = tmp_path / "part/shards"
    assert sorted(p.name for p in shards.glob("*.safetensors")) == ["shard-00000.safetensors"]
    (shards / ".shard-00001.safetensors.x1y2.tmp").write_bytes(b"half a shard")  # as SIGKILL would leave it
    with pytest.raises(InputError, match="incomplete.*rerun"):
        Embeddings.load(tmp_path / "part")

    resumed = []
    monkeypatch.setattr(_extract, "write_shard", lambda path, *a: (resumed.append(path.name), real_write(path, *a)))
    part = embed_manifest(df, tiny_clip, tmp_path / "part", **kw)
    assert resumed == ["shard-00001.safetensors", "shard-00002.safetensors"]  # shard 0 was not redone
    assert not list(shards.glob(".*.tmp"))
    assert list(part.ids) == list(full.ids)
    np.testing.assert_array_equal(part.get(part.ids), full.get(full.ids))
    for a, b in zip(part.get_views(part.ids), full.get_views(full.ids)):
        np.testing.assert_array_equal(a, b)


def test_rerun_of_a_complete_store_does_nothing(tiny_clip, photos, tmp_path, monkeypatch):
    df = photos(3)
    embed_manifest(df, tiny_clip, tmp_path / "emb", num_workers=0)
    monkeypatch.setattr(_extract, "write_shard", lambda *a: pytest.fail("re-embedded a complete store"))
    assert len(embed_manifest(df, tiny_clip, tmp_path / "emb", num_workers=0)) == 3


def test_worker_processes_give_identical_results(tiny_clip, photos, tmp_path):
    df = photos(8)
    a = embed_manifest(df, tiny_clip, tmp_path / "a", batch_size=4, num_workers=0)
    b = embed_manifest(df, tiny_clip, tmp_path / "b", batch_size=4, num_workers=2)
    np.testing.assert_array_equal(a.get(a.ids), b.get(a.ids))


def test_mismatched_manifest_and_store(tiny_clip, photos, tmp_path):
    df = photos(4)
    emb = embed_manifest(df, tiny_clip, tmp_path / "emb", num_workers=0)
    with pytest.raises(InputError, match=r"2 id\(s\) have no embedding.*'other1'.*do not match"):
        emb.get(["loc0", "other1", "other2"])
    other = df.assign(id=[f"other{i}" for i in range(4)])
    with pytest.raises(InputError, match="different manifest_sha256.*--overwrite"):
        embed_manifest(other, tiny_clip, tmp_path / "emb", num_workers=0)
    assert list(embed_manifest(other, tiny_clip, tmp_path / "emb", num_workers=0, overwrite=True).ids)[0] == "other0"


def test_load_errors(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="pigeon embed"):
        Embeddings.load(tmp_path / "none")
    (tmp_path / "x").mkdir()
    (tmp_path / "x/meta.json").write_text('{"kind": "geocells"}')
    with pytest.raises(InputError, match="not an embeddings folder"):
        Embeddings.load(tmp_path / "x")


def test_refuses_to_write_into_an_unrelated_folder(tiny_clip, photos, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy/notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an embeddings folder"):
        embed_manifest(photos(2), tiny_clip, tmp_path / "busy", num_workers=0)
