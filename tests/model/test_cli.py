"""``pigeon train`` and ``pigeon predict``: user errors are one clean line."""

from __future__ import annotations

import pytest

from tests.support import assert_clean_error


def test_predict_without_a_model_folder(cli, tmp_path):
    assert_clean_error(cli("predict", tmp_path / "nope", "a.jpg"), "not found", "pigeon train")


def test_predict_model_folder_missing_config(cli, tmp_path):
    (tmp_path / "model").mkdir()
    assert_clean_error(cli("predict", tmp_path / "model", "a.jpg"), "config.json", "pigeon train")


@pytest.mark.parametrize("args, needles", [
    ((), ("nothing to predict",)),
    (("a.jpg", "b.jpg", "c.jpg", "--views", "2"), ("multiple of --views 2",)),
    (("a.jpg", "--top-k", "0"), ("--top-k",)),
    (("--manifest", "m.parquet"), ("-o predictions.csv",)),
    (("a.jpg", "--manifest", "m.parquet"), ("not both",)),
    (("a.jpg", "b.jpg", "--probability-map", "p.geojson"), ("exactly one location",)),
])
def test_predict_bad_arguments(cli, tmp_path, args, needles):
    assert_clean_error(cli("predict", tmp_path, *args), *needles)


def test_train_with_missing_inputs(cli, tmp_path):
    result = cli("train", tmp_path / "m.parquet", "--cells", tmp_path / "cells", "--embeddings", tmp_path / "emb",
                 "-o", tmp_path / "model")
    assert_clean_error(result, "m.parquet")


def test_train_bad_option(cli, tmp_path):
    result = cli("train", tmp_path / "m.parquet", "--cells", tmp_path, "--embeddings", tmp_path,
                 "-o", tmp_path / "model", "--tau", "-3")
    assert_clean_error(result, "tau_km")
