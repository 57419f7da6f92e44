"""The hostile corpus through ``pigeon embed`` and ``pigeon predict --manifest``: refused files are listed, the
others embedded and predicted, in bounded time; ``--exact-decode`` is recorded and kept apart on resume."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from pigeon.data import write_manifest
from pigeon.embed import Embeddings
from tests.support import assert_clean_error
from tests.support.hostile import SECONDS_PER_FILE, corpus, hostile_files  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def hostile_manifest(hostile_files, tmp_path_factory):  # noqa: F811
    """One manifest row per hostile file, and where it is."""
    folder = next(iter(hostile_files.values())).parent
    df = pd.DataFrame({"id": list(hostile_files), "image": [p.name for p in hostile_files.values()],
                       "lat": 10.0, "lon": 20.0})
    path = tmp_path_factory.mktemp("manifest") / "hostile.csv"
    df.to_csv(path, index=False)
    assert (folder / df["image"][0]).is_file()
    return path.with_name("hostile.csv"), folder


def _relocated(manifest, folder, tmp_path):
    df = pd.read_csv(manifest)
    df["image"] = [str(folder / name) for name in df["image"]]
    write_manifest(df, tmp_path / "m.csv")
    return tmp_path / "m.csv"


def test_embed_lists_what_it_refuses_and_embeds_the_rest(cli, hostile_manifest, tmp_path):
    manifest = _relocated(*hostile_manifest, tmp_path)
    start = time.perf_counter()
    res = cli("embed", manifest, "-o", tmp_path / "emb", "--workers", "0", "--device", "cpu")
    took = time.perf_counter() - start
    assert res.exit_code == 0, res
    emb = Embeddings.load(tmp_path / "emb")
    readable = {h.name for h in corpus() if h.readable}
    assert set(emb.ids) == readable
    failed = dict(zip(emb.failed["id"], emb.failed["error"]))
    assert set(failed) == {h.name for h in corpus()} - readable
    assert "aspect ratio of 40,000.0:1" in failed["wide.png"] and "MAX_TEXT_CHUNK" in failed["text_bomb.png"]
    assert all("\n" not in e and "Traceback" not in e for e in failed.values())
    assert took < 20 + SECONDS_PER_FILE * len(corpus()) / 4, took  # model loading plus a bounded share per file


def test_predict_manifest_lists_the_failures_and_predicts_the_rest(cli, hostile_manifest, tmp_path):
    manifest = _relocated(*hostile_manifest, tmp_path)
    out = tmp_path / "pred.csv"
    res = cli("predict", "demo", "--manifest", manifest, "-o", out)
    assert res.exit_code == 0, res
    readable = {h.name for h in corpus() if h.readable}
    predicted = pd.read_csv(out)
    failures = pd.read_csv(tmp_path / "pred.failures.csv")
    assert set(predicted["id"]) == readable
    assert set(failures["id"]) == {h.name for h in corpus()} - readable
    assert f"{len(failures)} unreadable image(s) left out" in res.stdout


def test_exact_decode_is_recorded_and_never_mixed_on_resume(cli, photos, tmp_path):
    df = photos(2)
    write_manifest(df, tmp_path / "m.csv")
    assert cli("embed", tmp_path / "m.csv", "-o", tmp_path / "e", "--workers", "0", "--exact-decode").exit_code == 0
    config = Embeddings.load(tmp_path / "e").meta["config"]
    assert config["exact_decode"] is True and config["decode"]["exact"] is True
    assert_clean_error(cli("embed", tmp_path / "m.csv", "-o", tmp_path / "e", "--workers", "0"),
                       "different exact_decode", "--overwrite")
    res = cli("predict", "demo", tmp_path / "img/0_0.jpg", "--exact-decode", "--json")
    assert res.exit_code == 0, res
    assert '"lat"' in res.stdout
