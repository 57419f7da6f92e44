"""Decontamination: exactly the training rows within D km go, near-duplicate images go, the report says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pigeon.backbones import Backbone, BackboneCfg, register_backbone
from pigeon.data import read_manifest, read_table, write_manifest
from pigeon.data.decontaminate import decontaminate, report_path
from pigeon.errors import InputError
from tests.support import assert_clean_error
from tests.support.geo import brute_force_km, manifest, points_of


class PixelBackbone(Backbone):
    """Embedding = the centred 4x4 thumbnail: equal images are identical, unrelated noise images orthogonal."""

    def __init__(self) -> None:
        super().__init__("pigeontest_pixels:", BackboneCfg(source="tests", embed_dim=48, image_size=16,
                                                           interpolation="bilinear"))
        self.dummy = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.adaptive_avg_pool2d(pixels, 4).flatten(1)
        return x - x.mean(dim=1, keepdim=True) + 0 * self.dummy


register_backbone("pigeontest_pixels")(lambda spec: PixelBackbone())


def test_removes_exactly_the_training_rows_within_the_distance():
    df = manifest(300, seed=5)
    train, test = df.iloc[:260].reset_index(drop=True), df.iloc[260:].reset_index(drop=True)
    clean, removed = decontaminate(train, test, km=250)
    # independent check: every point (location or view centre) of every row, all pairs
    tr, te = points_of(train), points_of(test)
    gaps = np.array([[brute_force_km(a, b).min() for b in te] for a in tr])  # (train, test)
    expected = set(train["id"][gaps.min(axis=1) < 250])
    assert 0 < len(expected) < 260
    assert set(removed["id"]) == expected and set(clean["id"]) == set(train["id"]) - expected
    assert (removed["reason"] == "within 250 km").all()
    by_id = removed.set_index("id")
    for i in np.flatnonzero(gaps.min(axis=1) < 250):
        assert by_id.loc[train["id"][i], "nearest_id"] == test["id"][gaps[i].argmin()]
        assert by_id.loc[train["id"][i], "distance_km"] == pytest.approx(gaps[i].min(), abs=1e-3)
    info = clean.attrs["meta"]["decontamination"]
    assert info["removed"] == info["removed_within_km"] == len(expected)


@pytest.fixture
def image_sets(tmp_path):
    """A training set of noise images, three of them re-used in the test set (one resized), and embeddings."""
    from pigeon.embed import embed_manifest

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"img/t{i}.png")
        rows.append((f"t{i}", f"img/t{i}.png", 10.0 * i - 60, 20.0 * i - 110, "train"))
    for j, src in enumerate((2, 5, 9)):  # near-duplicates, far from any training location
        img = Image.open(tmp_path / f"img/t{src}.png")
        (img.resize((64, 64), Image.NEAREST) if j == 1 else img).save(tmp_path / f"img/q{j}.png")
        rows.append((f"q{j}", f"img/q{j}.png", -70.0 + j, 170.0, "test"))
    for j in range(3, 6):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"img/q{j}.png")
        rows.append((f"q{j}", f"img/q{j}.png", -70.0 + j, 170.0, "test"))
    df = pd.DataFrame(rows, columns=["id", "image", "lat", "lon", "split"])
    df.attrs["root"] = str(tmp_path)
    emb = embed_manifest(df, "pigeontest_pixels:", tmp_path / "emb", num_workers=0, device="cpu")
    return df[df["split"] == "train"], df[df["split"] == "test"], emb


def test_near_duplicate_images_are_removed_with_their_twin(image_sets):
    train, test, emb = image_sets
    clean, removed = decontaminate(train, test, embeddings=emb, max_similarity=0.95)
    assert sorted(removed["id"]) == ["t2", "t5", "t9"]
    assert removed.set_index("id")["nearest_id"].to_dict() == {"t2": "q0", "t5": "q1", "t9": "q2"}
    assert (removed["similarity"] > 0.95).all() and (removed["reason"] == "near-duplicate image").all()
    assert len(clean) == 9
    both, _ = decontaminate(train, test, km=300, embeddings=emb, max_similarity=0.95)
    assert both.attrs["meta"]["decontamination"]["removed_near_duplicates"] == 3


def test_errors(image_sets):
    train, test, emb = image_sets
    with pytest.raises(InputError, match="nothing to check"):
        decontaminate(train, test)
    with pytest.raises(InputError, match="needs --embeddings"):
        decontaminate(train, test, max_similarity=0.9)
    with pytest.raises(InputError, match="km=-1"):
        decontaminate(train, test, km=-1)
    with pytest.raises(InputError, match="all 12 training rows"):
        decontaminate(train, test, km=30_000)


def test_cli_writes_the_clean_manifest_and_the_report(image_sets, tmp_path, cli):
    train, test, _ = image_sets
    train_path, test_path = write_manifest(train, tmp_path / "train.parquet"), write_manifest(test, tmp_path / "q.csv")
    out = tmp_path / "clean.parquet"
    result = cli("data", "decontaminate", train_path, "--against", test_path, "--km", "2000",
                 "--embeddings", tmp_path / "emb", "--max-similarity", "0.95", "-o", out)
    assert result.exit_code == 0, result
    report = read_table(report_path(out))
    assert set(report["id"]) >= {"t2", "t5", "t9"} and "near-duplicate image" in set(report["reason"])
    assert len(read_manifest(out)) == 12 - len(report)
    assert "near-duplicate image(s)" in result.stdout and str(report_path(out)) in result.stdout
    assert_clean_error(cli("data", "decontaminate", train_path, "--against", test_path, "-o", out), "nothing to check")
