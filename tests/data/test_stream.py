"""Streamed manifest readers give what the in-memory reader gives, batch by batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pigeon.data import iter_manifest, manifest_rows, read_manifest, read_points, select_split, write_manifest
from pigeon.errors import ArtifactNotFoundError, InputError


def _manifest(n: int = 23) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(n)],
        "image": [[f"{i}_a.jpg", f"{i}_b.jpg"] if i % 4 == 0 else f"{i}.jpg" for i in range(n)],
        "lat": rng.uniform(-90, 90, n), "lon": rng.uniform(-180, 180, n),
        "split": rng.choice(["train", "val", "test"], n), "country": rng.choice(["FR", "JP", None], n),
    })


@pytest.fixture
def parquet(tmp_path):
    """A manifest in row groups of 7 rows (the streamed reader must not care where groups end)."""
    path = tmp_path / "m.parquet"
    write_manifest(_manifest(), path)
    pq.write_table(pq.read_table(path), path, row_group_size=7)
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batches_concatenate_to_the_in_memory_manifest(tmp_path, parquet, suffix):
    path = parquet if suffix == ".parquet" else write_manifest(_manifest(), tmp_path / "m.csv")
    whole = read_manifest(path)
    batches = list(iter_manifest(path, batch_rows=5))
    assert all(len(b) <= 5 for b in batches) and len(batches) >= 5
    assert all(b.attrs["root"] == whole.attrs["root"] for b in batches)
    pd.testing.assert_frame_equal(pd.concat(batches), whole)  # same values, and the index is the file's row number
    assert manifest_rows(path) == len(whole) == 23


def test_columns_and_split(parquet):
    whole = read_manifest(parquet)
    batches = list(iter_manifest(parquet, batch_rows=6, columns=[], split="test"))
    got = pd.concat(batches)
    assert list(got.columns) == ["id", "image", "lat", "lon", "split"]  # the required ones and split only
    expected = select_split(whole, "test")[got.columns]
    pd.testing.assert_frame_equal(got, expected)
    assert list(pd.concat(iter_manifest(parquet, columns=["country"])).columns)[-1] == "country"
    with pytest.raises(InputError, match="no column.*elevation"):
        next(iter_manifest(parquet, columns=["elevation"]))


def test_bad_rows_are_reported_with_their_place_in_the_file(tmp_path):
    df = _manifest().assign(image=lambda d: d["id"] + ".jpg")  # write_manifest would refuse the bad value
    df.loc[17, "lat"] = 95.0
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=10)
    batches = iter_manifest(path, batch_rows=10)
    assert len(next(batches)) == 10  # the first batch is fine: errors come when their batch is read
    with pytest.raises(InputError, match=r"rows 10-19 \('row N' counts from row 10\).*row 7 lat: 95.0"):
        next(batches)
    with pytest.raises(InputError, match="rows 10-19.*row 7 has 95.0"):
        read_points(path, batch_rows=10)


def test_read_points_equals_the_manifest_columns_and_is_small(parquet):
    whole = read_manifest(parquet)
    points = read_points(parquet, batch_rows=4)
    assert list(points.columns) == ["lat", "lon", "split"]
    np.testing.assert_array_equal(points[["lat", "lon"]].to_numpy(), whole[["lat", "lon"]].to_numpy())
    assert points["split"].astype(str).tolist() == whole["split"].tolist()
    train = read_points(parquet, split="train")
    np.testing.assert_array_equal(train["lat"], whole.loc[whole["split"] == "train", "lat"])
    assert (train["split"] == "train").all()
    assert points.memory_usage(index=False, deep=True).sum() <= 17 * len(points) + 200  # 8 + 8 + 1 bytes a point


def test_read_points_without_split_and_errors(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"Lat": [1.0, 2.0], "LON": [3.0, 4.0]}).to_csv(path, index=False)
    assert read_points(path).to_dict("list") == {"lat": [1.0, 2.0], "lon": [3.0, 4.0]}
    with pytest.raises(InputError, match="no 'split' column"):
        read_points(path, split="train")
    pd.DataFrame({"x": [1.0]}).to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(InputError, match="missing column.*lat, lon.*has x"):
        read_points(tmp_path / "q.csv")
    pd.DataFrame({"lat": [1.0], "lon": [2.0], "split": ["dev"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(InputError, match="'dev' is not one of train/val/test"):
        read_points(tmp_path / "s.csv")
    with pytest.raises(ArtifactNotFoundError):
        read_points(tmp_path / "none.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="cannot read manifest"):
        list(iter_manifest(tmp_path / "junk.parquet"))


def test_empty_and_missing_split(tmp_path, parquet):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pandas(_manifest().iloc[:0].assign(image=""), preserve_index=False), path)
    with pytest.raises(InputError, match="empty"):
        list(iter_manifest(path))
    with pytest.raises(InputError, match="empty"):
        read_points(path)
    only_train = tmp_path / "train.parquet"
    write_manifest(_manifest().assign(split="train"), only_train)
    with pytest.raises(InputError, match="no rows with split='test'"):
        list(iter_manifest(only_train, split="test"))
    with pytest.raises(InputError, match="split must be one of"):
        list(iter_manifest(parquet, split="dev"))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_table_written_in_batches_reads_back_as_one_table(tmp_path, suffix):
    from pigeon._io import read_table, write_table_batches

    first = pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0], "country": [None, None]})  # all missing in batch 1
    second = pd.DataFrame({"id": ["c"], "x": [3.0], "country": ["FR"]})
    path = tmp_path / f"t.{suffix}"
    assert write_table_batches(iter([first, second]), path, {"kind": "test"}) == 3
    back = read_table(path)
    assert back["id"].tolist() == ["a", "b", "c"] and back["x"].tolist() == [1.0, 2.0, 3.0]
    assert back["country"].iloc[2] == "FR" and back["country"].iloc[:2].isna().all()
    assert back.attrs["meta"] == {"kind": "test"}


def test_no_batches_or_a_failing_batch_leave_no_file(tmp_path):
    from pigeon._io import write_table_batches

    with pytest.raises(InputError, match="nothing to write"):
        write_table_batches(iter([]), tmp_path / "t.parquet")

    def failing():
        yield pd.DataFrame({"id": ["a"]})
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        write_table_batches(failing(), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []
