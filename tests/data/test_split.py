"""Splits: proportional random labels, whole regions and cells held out, the buffer, metadata, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from pigeon.data import read_manifest, write_manifest
from pigeon.data.split import SplitConfig, assign_groups, assign_splits, parse_split, region_labels, split_manifest
from pigeon.errors import InputError, PigeonError
from tests.support import assert_clean_error
from tests.support.geo import brute_force_km, manifest, points_of

@pytest.mark.parametrize(("n", "fractions", "expected"), [
    (10, (0.8, 0.1, 0.1), (8, 1, 1)), (7, (0.8, 0.1, 0.1), (5, 1, 1)), (3, (1 / 3, 1 / 3, 1 / 3), (1, 1, 1)),
    (5, (1.0, 0.0, 0.0), (5, 0, 0)), (0, (0.8, 0.1, 0.1), (0, 0, 0)),
])
def test_assign_splits_counts(n, fractions, expected):
    labels = assign_splits(n, fractions, seed=0)
    assert tuple(int((labels == s).sum()) for s in ("train", "val", "test")) == expected


def test_parse_split():
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    for bad in ("0.8,0.1", "0.5,0.5,0.5", "a,b,c", "1.2,-0.1,-0.1", "nan,0,1"):
        with pytest.raises(InputError, match="--fractions"):
            parse_split(bad)


def test_groups_share_a_label_and_shares_are_met():
    groups = np.repeat(np.arange(60), np.random.default_rng(0).integers(5, 25, 60))
    labels = assign_groups(groups, (0.7, 0.15, 0.15), seed=3)
    assert all(len(set(labels[groups == g])) == 1 for g in range(60))
    share = {s: np.mean(labels == s) for s in ("train", "val", "test")}
    assert share["val"] == pytest.approx(0.15, abs=0.03) and share["test"] == pytest.approx(0.15, abs=0.03)
    assert not (assign_groups(groups, (1.0, 0.0, 0.0)) != "train").any()


def test_region_split_keeps_every_heldout_point_beyond_the_buffer_views_included():
    df = manifest()
    out = split_manifest(df, by="region", buffer_km=400, seed=1, n_regions=20)
    pts = points_of(out)
    train = np.concatenate([pts[i] for i in np.flatnonzero(out["split"] == "train")])
    held = np.concatenate([pts[i] for i in np.flatnonzero(out["split"].isin(["val", "test"]))])
    assert brute_force_km(held, train).min() >= 400
    meta = out.attrs["meta"]["split"]
    assert meta["min_heldout_to_train_km"] >= 400 and meta["views"] is True
    counts = meta["counts"]
    assert counts["excluded"] > 0 and counts["excluded"] == out["split"].isna().sum()
    assert counts["val"] == pytest.approx(40, abs=20) and counts["test"] == pytest.approx(40, abs=20)
    # the buffer only takes away training rows: the held-out rows are those of the unbuffered split
    plain = split_manifest(df, by="region", seed=1, n_regions=20)
    assert (plain["split"].isin(["val", "test"]) == out["split"].isin(["val", "test"])).all()
    # the view centres matter: locations alone would not show how close some pairs of panoramas are
    locs = out[["lat", "lon"]].to_numpy()
    gap_locations = brute_force_km(locs[out["split"].isin(["val", "test"])], locs[plain["split"] == "train"]).min()
    gap_views = brute_force_km(held, np.concatenate([pts[i] for i in np.flatnonzero(plain["split"] == "train")]))
    assert gap_views.min() < gap_locations


def test_region_split_holds_out_whole_regions_and_is_seeded():
    df = manifest(views=False)
    a = split_manifest(df, by="region", seed=2, n_regions=25)
    regions = region_labels(df["lat"], df["lon"], 25, seed=2)
    assert all(a["split"][regions == r].nunique() == 1 for r in np.unique(regions))
    assert a["split"].tolist() == split_manifest(df, by="region", seed=2, n_regions=25)["split"].tolist()
    assert a["split"].tolist() != split_manifest(df, by="region", seed=3, n_regions=25)["split"].tolist()


def test_cell_split_holds_out_whole_cells(tmp_path):
    from pigeon.cells import GeoCells

    df = manifest(views=False)
    cells = GeoCells.build(df["lat"], df["lon"], method="naive", min_size=1, max_size=12, seed=0)
    cells.save(tmp_path / "cells")
    for given in (cells, tmp_path / "cells"):
        out = split_manifest(df, by="cell", cells=given, seed=0)
        cell = cells.assign(df["lat"], df["lon"])
        assert all(out["split"][cell == c].nunique() == 1 for c in np.unique(cell))
        assert set(out["split"]) == {"train", "val", "test"}
    on_the_fly = split_manifest(df, by="cell", seed=0, n_regions=30)
    assert "naive cells built on the fly" in on_the_fly.attrs["meta"]["split"]["cells"]


def test_random_split_with_a_buffer_and_without():
    df = manifest()
    plain = split_manifest(df, seed=4)
    assert plain["split"].value_counts().to_dict() == {"train": 320, "val": 40, "test": 40}
    assert plain["split"].tolist() == assign_splits(400, (0.8, 0.1, 0.1), 4).tolist()  # same as before
    buffered = split_manifest(df, seed=4, buffer_km=50)
    assert buffered.attrs["meta"]["split"]["min_heldout_to_train_km"] >= 50
    assert (buffered["split"].isna() == ((plain["split"] == "train") & (buffered["split"] != "train"))).all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_split_config_travels_with_the_manifest(tmp_path, suffix):
    out = split_manifest(manifest(60), by="region", buffer_km=100, seed=0, n_regions=6)
    back = read_manifest(write_manifest(out, tmp_path / f"m{suffix}"))
    assert back.attrs["meta"]["split"] == out.attrs["meta"]["split"]
    assert back["split"].isna().sum() == out.attrs["meta"]["split"]["counts"]["excluded"]
    np.testing.assert_allclose(back["view_lat"].iloc[3], out["view_lat"].iloc[3])
    stripped = back.copy()
    stripped.attrs = {}
    write_manifest(stripped, tmp_path / f"m{suffix}")  # a rewrite without metadata leaves none behind
    assert read_manifest(tmp_path / f"m{suffix}").attrs["meta"] == {}


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(by="country"), "unknown split method 'country'"),
    (dict(fractions=(0.5, 0.5, 0.5)), "fractions"),
    (dict(buffer_km=-1.0), "buffer_km"),
    (dict(by="region", buffer_km=30_000.0), "leaves no training row"),
    (dict(cells="cells/"), "only used by the cell split"),
    (dict(by="region", n_regions=0), "n_regions"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(PigeonError, match=match):
        split_manifest(manifest(50), **kwargs)


def test_cli_split_and_ingest_with_split_options(tmp_path, cli):
    path = write_manifest(manifest(200), tmp_path / "m.parquet")
    out = tmp_path / "split.csv"
    result = cli("data", "split", path, "-o", out, "--by", "region", "--buffer-km", "300", "--regions", "12",
                 "--fractions", "0.6,0.2,0.2", "--seed", "1")
    assert result.exit_code == 0, result
    back = read_manifest(out)
    meta = back.attrs["meta"]["split"]
    assert meta["by"] == "region" and meta["fractions"] == [0.6, 0.2, 0.2] and meta["n_regions"] == 12
    assert "left out by the 300 km buffer" in result.stdout and "by region" in result.stdout
    assert_clean_error(cli("data", "split", path, "-o", out, "--by", "region", "--buffer-km", "40000"),
                       "leaves no training row")
    assert_clean_error(cli("data", "split", path, "-o", out, "--fractions", "1,1,1"), "--fractions")


def test_split_config_applies_its_fields():
    df = manifest(100)
    assert split_manifest(df, SplitConfig(by="region", n_regions=5, seed=1))["split"].tolist() == \
        split_manifest(df, by="region", n_regions=5, seed=1)["split"].tolist()
