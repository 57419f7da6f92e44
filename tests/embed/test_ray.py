"""Embedding on Ray Data: same store as the single-process path, resumable by shard, workers never write meta.json.

One local Ray instance (2 CPUs, no dashboard) is started for the module and stopped after it.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from pigeon._io import read_json, write_json
from pigeon.data import write_manifest
from pigeon.embed import Embeddings, embed_manifest, embed_manifest_ray
from pigeon.embed import _ray
from pigeon.embed._ray import ShardEmbedder
from pigeon.errors import InputError, PigeonError
from tests.support import assert_clean_error

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

FP16 = dict(rtol=2e-3, atol=2e-3)  # float16 storage
KW = dict(batch_size=3, shard_size=4)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _assert_same_store(a: Embeddings, b: Embeddings) -> None:
    assert list(a.ids) == list(b.ids) and a.n_views.tolist() == b.n_views.tolist()
    np.testing.assert_allclose(a.get(a.ids), b.get(b.ids), **FP16)
    for x, y in zip(a.get_views(a.ids), b.get_views(b.ids)):
        np.testing.assert_allclose(x, y, **FP16)


def test_ray_equals_single_process_and_a_killed_job_resumes(local_ray, tiny_clip, photos, tmp_path, monkeypatch):
    df = photos(14)  # 4 shards of 4 rows (the last has 2), multi-view rows included
    (tmp_path / "img/4_0.jpg").write_bytes(b"not a jpeg")  # failures are recorded the same way
    name = tiny_clip.name
    single = embed_manifest(df, tiny_clip, tmp_path / "single", num_workers=0, **KW)
    out = tmp_path / "ray"
    emb = embed_manifest_ray(df, name, out, num_workers=2, **KW)
    _assert_same_store(emb, single)
    assert emb.failed.values.tolist() == single.failed.values.tolist()
    assert emb.meta["config"]["engine"] == "ray" and emb.meta["config"]["ray_workers"] == 2
    assert emb.meta["n_failed_images"] == 1 and emb.meta["complete"]

    # what a job killed half way leaves: some shards, a half-written temporary file, meta.json not complete
    shards = out / "shards"
    for k in (1, 3):
        (shards / f"shard-{k:05d}.safetensors").unlink()
    (shards / ".shard-00001.safetensors.ab12.tmp").write_bytes(b"half a shard")
    (out / "index.parquet").unlink()
    write_json(out / "meta.json", {**read_json(out / "meta.json"), "complete": False})
    with pytest.raises(InputError, match="incomplete"):
        Embeddings.load(out)
    kept = {p.name: os.stat(p).st_ino for p in shards.glob("*.safetensors")}

    resumed = embed_manifest_ray(df, name, out, num_workers=2, **KW)
    after = {p.name: os.stat(p).st_ino for p in shards.glob("*.safetensors")}
    assert sorted(after) == [f"shard-{k:05d}.safetensors" for k in range(4)]
    assert all(after[n] == ino for n, ino in kept.items())  # the surviving shards were not redone
    assert resumed.meta["config"]["ray_workers"] == 2
    assert not list(shards.glob(".*.tmp"))
    assert resumed.meta["complete"] and len(set(resumed.ids)) == len(resumed.ids) == 13  # row 4 failed
    _assert_same_store(resumed, single)

    monkeypatch.setattr(_ray, "_connected", lambda *a: pytest.fail("a complete store was embedded again"))
    assert len(embed_manifest_ray(df, name, out, num_workers=2, **KW)) == 13


def test_a_single_process_store_is_resumed_by_ray(local_ray, tiny_clip, photos, tmp_path):
    df = photos(8)
    name = tiny_clip.name
    full = embed_manifest(df, tiny_clip, tmp_path / "full", num_workers=0, **KW)
    part = tmp_path / "part"
    embed_manifest(df, tiny_clip, part, num_workers=0, **KW)
    (part / "shards/shard-00001.safetensors").unlink()
    write_json(part / "meta.json", {**read_json(part / "meta.json"), "complete": False})
    _assert_same_store(embed_manifest_ray(df, name, part, num_workers=1, **KW), full)


def test_errors_are_one_line_also_from_workers(local_ray, tiny_clip, tiny_clip_dir, photos, tmp_path):
    df = photos(2)
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        embed_manifest_ray(df, tiny_clip.name, tmp_path / "e", device="tpu")
    with pytest.raises(InputError, match="num_workers must be >= 1"):
        embed_manifest_ray(df, tiny_clip.name, tmp_path / "e", num_workers=0)
    with pytest.raises(InputError, match="2 Ray workers need 4 CPUs but the cluster has 2; lower --num-workers"):
        embed_manifest_ray(df, tiny_clip.name, tmp_path / "e1", num_workers=2, cpus_per_worker=2, shard_size=1)
    with pytest.raises(InputError, match="cluster has no GPU"):
        embed_manifest_ray(df, tiny_clip.name, tmp_path / "e2", device="cuda")
    no_weights = tmp_path / "clip"  # the driver reads the config only; the workers find no weights
    shutil.copytree(tiny_clip_dir, no_weights, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    with pytest.raises(PigeonError, match="a Ray worker failed: .*cannot load CLIP weights") as err:
        embed_manifest_ray(df, f"clip:{no_weights}", tmp_path / "e", num_workers=1)
    assert len(str(err.value).splitlines()) == 1
    assert not list((tmp_path / "e/shards").glob("*.safetensors"))
    assert not read_json(tmp_path / "e/meta.json")["complete"]


def test_a_replica_writes_only_its_shard(tiny_clip, photos, tmp_path):
    """The actor body, run in this process: one shard file, no meta.json or index (the driver's job)."""
    df = photos(3)
    root = df.attrs["root"]
    views = [[f"{root}/{v}" for v in (im if isinstance(im, list) else [im])] for im in df["image"]]
    embedder = ShardEmbedder(tiny_clip.name, str(tmp_path / "out"), batch_size=2,
                             decode_workers=0, threads=1, device="cpu", dtype=None, max_pixels=None)
    batch = {"shard": np.array([7]), "ids": np.array([json.dumps(df["id"].tolist())]),
             "views": np.array([json.dumps(views)])}
    assert embedder(batch)["shard"].tolist() == [7]
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "shards", "shards/shard-00007.safetensors"]


def test_cli_engine_ray(local_ray, cli, tiny_clip, photos, tmp_path):
    write_manifest(photos(5), tmp_path / "m.parquet")
    res = cli("embed", tmp_path / "m.parquet", "-o", tmp_path / "emb", "--backbone", tiny_clip.name, "--engine", "ray",
              "--num-workers", "2", "--shard-size", "2", "--device", "cpu")
    assert res.exit_code == 0, res
    assert "embedded 5 of 5 rows (7 images)" in res.stdout
    assert Embeddings.load(tmp_path / "emb").meta["config"]["ray_workers"] == 2
    assert_clean_error(cli("embed", tmp_path / "m.parquet", "-o", tmp_path / "e2", "--num-workers", "2"),
                       "--num-workers only apply to --engine ray")
    assert_clean_error(cli("embed", tmp_path / "m.parquet", "-o", tmp_path / "e2", "--engine", "spark"),
                       "unknown engine 'spark'")


def test_shards_on_ray_equal_one_process_and_resume_its_store(local_ray, tiny_clip, photos, tmp_path):
    from pigeon.data.shards import write_shards
    from pigeon.embed import embed_shards_from, embed_shards_ray

    shards = write_shards(photos(7), tmp_path / "shards", size=3)
    full = embed_shards_from(shards.pattern, tiny_clip, tmp_path / "full", batch_size=3, num_workers=0)
    on_ray = embed_shards_ray(shards.pattern, tiny_clip.name, tmp_path / "ray", num_workers=2, batch_size=3)
    _assert_same_store(on_ray, full)
    assert on_ray.meta["config"]["ray_workers"] == 2
    assert (tmp_path / "ray/manifest.parquet").read_bytes() == (tmp_path / "full/manifest.parquet").read_bytes()
    part = tmp_path / "part"  # a single-process store missing one shard, finished by Ray
    embed_shards_from(shards.pattern, tiny_clip, part, batch_size=3, num_workers=0)
    (part / "shards/shard-00002.safetensors").unlink()
    write_json(part / "meta.json", {**read_json(part / "meta.json"), "complete": False})
    resumed = embed_shards_ray(shards.pattern, tiny_clip.name, part, num_workers=1, batch_size=3)
    _assert_same_store(resumed, full)
    assert resumed.meta["config"]["ray_workers"] == 1  # one shard left: one replica
