"""Manifest reading, validation and writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pigeon.data import (
    image_views, read_manifest, read_table, select_split, training_rows, validate_manifest, write_manifest,
)
from pigeon.errors import ArtifactNotFoundError, InputError


def _df(**overrides) -> pd.DataFrame:
    data = {"id": ["a", "b", "c"], "image": ["a.jpg", ["b_0.jpg", "b_90.jpg"], "sub/c.jpg"],
            "lat": [48.85, -33.87, 0.0], "lon": [2.35, 151.21, -179.5], "split": ["train", "val", "test"]}
    data.update(overrides)
    return pd.DataFrame(data)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_keeps_multi_view_lists_and_values(tmp_path, suffix):
    path = write_manifest(_df(country=["FR", "AU", None]), tmp_path / f"m{suffix}")
    df = read_manifest(path)
    assert df["id"].tolist() == ["a", "b", "c"]
    assert df["image"].tolist() == ["a.jpg", ["b_0.jpg", "b_90.jpg"], "sub/c.jpg"]
    np.testing.assert_allclose(df["lat"], [48.85, -33.87, 0.0])
    assert df["lat"].dtype == np.float64
    assert df["country"].iloc[0] == "FR"
    assert df.attrs["root"] == str(tmp_path.resolve())


def test_csv_ids_stay_strings(tmp_path):
    path = tmp_path / "m.csv"
    df = pd.DataFrame({"id": ["007", "010"], "image": ["x.jpg", "y.jpg"], "lat": [1, 2], "lon": [3, 4]})
    df.to_csv(path, index=False)
    assert read_manifest(path)["id"].tolist() == ["007", "010"]


def test_image_views_resolve_against_the_manifest_folder(tmp_path):
    absolute = str(tmp_path / "elsewhere" / "d.jpg")
    df = _df(image=["a.jpg", ["b_0.jpg", "b_90.jpg"], absolute])
    views = image_views(read_manifest(write_manifest(df, tmp_path / "m.parquet")))
    root = tmp_path.resolve()
    assert views == [[root / "a.jpg"], [root / "b_0.jpg", root / "b_90.jpg"], [Path(absolute)]]
    assert image_views(df, root="/data")[0] == [Path("/data/a.jpg")]


@pytest.mark.parametrize("target", ["out/m.parquet", "m2.csv", "data/sub/m.parquet"])
def test_writing_elsewhere_keeps_image_paths_pointing_at_the_images(tmp_path, target):
    absolute = str(tmp_path / "elsewhere" / "d.jpg")
    original = read_manifest(write_manifest(_df(image=["a.jpg", ["b_0.jpg", "b_90.jpg"], absolute]),
                                            tmp_path / "data" / "m.parquet"))
    moved = read_manifest(write_manifest(original.assign(extra=1), tmp_path / target))
    assert image_views(moved) == image_views(original)
    assert not Path(moved["image"].iloc[0]).is_absolute()  # still relative, so the pair of folders can move


def test_every_bad_row_is_reported_at_once():
    df = _df(id=["a", "a", "c"], lat=[95.0, 0.0, np.nan], lon=[0.0, -181.0, 0.0], split=["train", "dev", None],
             image=["a.jpg", "", "c.jpg"])
    with pytest.raises(InputError) as err:
        validate_manifest(df)
    msg = str(err.value)
    for part in ("row 0 id: duplicate id 'a'", "row 1 id: duplicate", "row 1 image: empty", "row 0 lat: 95.0 out of range [-90, 90] (id 'a')",
                 "row 2 lat: missing (id 'c')", "row 1 lon: -181.0", "row 1 split: 'dev'"):
        assert part in msg, (part, msg)
    assert "\n" not in msg


def test_missing_columns_and_empty_manifest():
    with pytest.raises(InputError, match="missing column.*image, lat"):
        validate_manifest(pd.DataFrame({"id": ["a"], "lon": [0.0]}))
    with pytest.raises(InputError, match="empty"):
        validate_manifest(_df().iloc[:0])


def test_column_names_are_case_insensitive():
    df = validate_manifest(_df().rename(columns={"lat": "LAT", "Id": "ID", "image": "Image"}))
    assert {"id", "image", "lat"} <= set(df.columns)


def test_coordinates_optional_for_photos_to_geolocate(tmp_path):
    df = pd.DataFrame({"id": ["x", "y"], "image": ["x.jpg", "y.jpg"], "lat": [np.nan, 10.0], "lon": [np.nan, 20.0]})
    with pytest.raises(InputError, match=r"row 0 lat: missing \(id 'x'\)"):
        validate_manifest(df)
    assert len(validate_manifest(df, require_coords=False)) == 2
    path = write_manifest(df.drop(columns=["lat", "lon"]), tmp_path / "u.parquet")
    assert read_manifest(path, require_coords=False)["id"].tolist() == ["x", "y"]
    with pytest.raises(InputError, match="missing column"):
        read_manifest(path)


def test_select_split():
    df = validate_manifest(_df())
    df.attrs["root"] = "/r"
    test = select_split(df, "test")
    assert test["id"].tolist() == ["c"] and test.attrs["root"] == "/r"
    assert select_split(df, None) is df
    with pytest.raises(InputError, match="no rows with split='train'"):
        select_split(df[df["split"] != "train"], "train")
    with pytest.raises(InputError, match="no 'split' column"):
        select_split(df.drop(columns="split"), "test")
    assert select_split(df[df["split"] != "val"], "val", empty_ok=True).empty
    with pytest.raises(InputError, match="split must be one of"):
        select_split(df, "training")


def test_training_rows_are_the_train_split_or_every_row():
    df = validate_manifest(_df())
    df.attrs["root"] = "/r"
    rows = training_rows(df)
    assert rows["id"].tolist() == ["a"] and rows.attrs["root"] == "/r"
    assert training_rows(df, "val")["id"].tolist() == ["b"]
    whole = df.drop(columns="split")
    assert training_rows(whole) is whole
    with pytest.raises(InputError, match="no rows with split 'train'.*drop the split column"):
        training_rows(df[df["split"] != "train"])
    with pytest.raises(InputError, match="no rows to train on"):
        training_rows(whole.iloc[:0])


def test_read_table_errors(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="not found"):
        read_table(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read"):
        read_table(bad)
    odd = tmp_path / "m.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported"):
        read_table(odd)
    with pytest.raises(InputError, match="unsupported output format"):
        write_manifest(_df(), tmp_path / "m.json")


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    write_manifest(_df(), tmp_path / "m.parquet")
    with pytest.raises(InputError):
        write_manifest(_df(lat=[100.0, 0.0, 0.0]), tmp_path / "m.parquet")  # invalid: old file stays
    assert read_manifest(tmp_path / "m.parquet")["lat"].iloc[0] == 48.85
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet"]
