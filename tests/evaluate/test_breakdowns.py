"""Breakdowns by distance to training, country and cell; other tools' files; comparisons; named plots."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import pigeon.evaluate._plots as plots
from pigeon.data import read_table, write_manifest
from pigeon.evaluate import (
    DISTANCE_BANDS_KM, band_labels, compute_metrics, distance_bands, match_predictions, metrics_by_band,
    metrics_by_group, write_comparison, write_report,
)
from tests.support import assert_clean_error
from tests.support.geo import brute_force_km


@pytest.fixture
def titles(monkeypatch):
    """Capture the titles of every figure the report writes, by file name."""
    seen = {}
    save = plots._save

    def spy(fig, path):
        seen[str(path).rsplit("/", 1)[-1]] = [ax.get_title() for ax in fig.axes if ax.get_title()]
        seen[str(path).rsplit("/", 1)[-1] + ":axes"] = fig.axes
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def many(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Truth on land-ish latitudes, guesses a random few hundred km off, and training locations."""
    from pigeon.geo import destination_point

    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(-40, 60, n), rng.uniform(-120, 140, n)
    truth = pd.DataFrame({"id": [f"i{k}" for k in range(n)], "image": [f"{k}.jpg" for k in range(n)],
                          "lat": lat, "lon": lon})
    glat, glon = destination_point(lat, lon, rng.uniform(0, 360, n), rng.lognormal(5.5, 1.2, n))
    pred = pd.DataFrame({"id": truth["id"], "lat": glat, "lon": glon})
    train = pd.DataFrame({"id": [f"t{k}" for k in range(150)], "image": "x.jpg",
                          "lat": rng.uniform(-40, 60, 150), "lon": rng.uniform(-120, 140, 150)})
    return truth, pred, train


def test_distance_bands_partition_every_distance():
    d = np.array([0.0, 24.999, 25.0, 199.9, 200.0, 749.0, 750.0, 19_000.0])
    assert band_labels() == ["< 25 km", "25-200 km", "200-750 km", ">= 750 km"]
    assert distance_bands(d).tolist() == ["< 25 km", "< 25 km", "25-200 km", "25-200 km", "200-750 km",
                                          "200-750 km", ">= 750 km", ">= 750 km"]
    truth, pred, train = many()
    joined = match_predictions(pred, truth)
    joined["train_distance_km"] = np.random.default_rng(1).lognormal(5, 1.5, len(joined))
    bands = metrics_by_band(joined)
    assert bands.index.tolist() == band_labels() and bands["n"].sum() == len(joined)
    for label, row in bands.iterrows():  # each band's metrics are those of its rows
        part = joined[distance_bands(joined["train_distance_km"]) == label]
        assert row["median_km"] == pytest.approx(np.median(part["distance_km"]))


def test_report_with_training_locations_countries_and_cells(tmp_path, titles):
    from pigeon.cells import GeoCells

    truth, pred, train = many()
    cells = GeoCells.build(train["lat"], train["lon"], method="naive", min_size=1, max_size=10, seed=0)
    write_report(pred, truth, tmp_path / "r", train_df=train, cells=cells, name="model A")
    errors = read_table(tmp_path / "r" / "errors.parquet")
    independent = brute_force_km(truth[["lat", "lon"]].to_numpy(), train[["lat", "lon"]].to_numpy()).min(axis=1)
    np.testing.assert_allclose(errors["train_distance_km"], independent, atol=1e-6)
    bands = read_table(tmp_path / "r" / "by_train_distance.csv")
    assert bands["n"].sum() == len(truth) and len(bands) == len(DISTANCE_BANDS_KM) + 1
    assert "## By distance to the nearest training location" in (tmp_path / "r" / "metrics.md").read_text()

    by_country = pd.read_csv(tmp_path / "r" / "by_country.csv", keep_default_na=False)  # "NA" is Namibia
    expected = errors.groupby("country")["distance_km"].median()
    for row in by_country.itertuples():
        assert row.median_km == pytest.approx(expected[row.country])
        assert row.acc_750km == pytest.approx(np.mean(errors.loc[errors["country"] == row.country, "distance_km"] < 750))
    by_cell = read_table(tmp_path / "r" / "by_cell.csv")
    assert by_cell["n"].sum() == len(truth)
    assert set(by_cell["cell"]) == set(cells.assign(truth["lat"], truth["lon"]))

    names = ("error_cdf.png", "error_map.png", "by_country.png", "by_cell.png", "error_vs_train_distance.png")
    for name in names:
        assert (tmp_path / "r" / name).is_file()
        assert titles[name] and all("model A" in t for t in titles[name]), (name, titles[name])


def test_error_map_draws_arcs_for_a_seeded_sample(tmp_path, titles):
    truth, pred, _ = many(700)
    joined = match_predictions(pred, truth)
    plots.plot_error_map(joined, tmp_path / "a.png", seed=3, name="run")
    first = titles["a.png:axes"][0].collections[1].get_offsets()  # the truth dots
    assert len(first) == plots.MAX_ARCS and "random sample of 300 of 700" in titles["a.png"][0]
    plots.plot_error_map(joined, tmp_path / "b.png", seed=3, name="run")
    np.testing.assert_array_equal(titles["b.png:axes"][0].collections[1].get_offsets(), first)
    plt.close("all")


def test_metrics_by_group_skips_unknown_areas():
    joined = pd.DataFrame({"distance_km": [10.0, 1000.0, 30.0, 5.0]})
    table = metrics_by_group(joined, ["FR", "FR", None, "DE"])
    assert table["key"].tolist() == ["FR", "DE"] and table["n"].tolist() == [2, 1]
    assert table.set_index("key").loc["FR", "acc_750km"] == 0.5


@pytest.fixture
def other_tool(tmp_path, pred, truth):
    """Another tool's predictions (own column names, lon as 'predicted_long') and its truth file."""
    theirs = pred.rename(columns={"id": "img_id", "lat": "predicted_lat", "lon": "predicted_long"})
    theirs.insert(1, "LAT", 0.0)  # a decoy column that a case-insensitive match would otherwise pick
    theirs_path = tmp_path / "theirs.csv"
    theirs.to_csv(theirs_path, index=False)
    truth_path = tmp_path / "gt.csv"
    truth.drop(columns="image").rename(columns={"id": "IMG", "lat": "y", "lon": "x"}).to_csv(truth_path, index=False)
    return theirs_path, truth_path


def test_columns_reproduce_the_metrics_of_the_renamed_file(tmp_path, cli, pred, truth, other_tool):
    theirs_path, truth_path = other_tool
    result = cli("evaluate", "-p", theirs_path, "--columns", "id=img_id,lat=predicted_lat,lon=predicted_long",
                 "-t", truth_path, "--truth-columns", "id=IMG,lat=y,lon=x", "-o", tmp_path / "r")
    assert result.exit_code == 0, result
    assert json.loads((tmp_path / "r" / "metrics.json").read_text()) == compute_metrics(pred, truth)


def test_rows_that_are_not_data_are_named(tmp_path, cli, other_tool):
    theirs_path, truth_path = other_tool
    lines = theirs_path.read_text().splitlines()
    args = ("--columns", "id=img_id,lat=predicted_lat,lon=predicted_long", "-t", truth_path,
            "--truth-columns", "id=IMG,lat=y,lon=x", "-o", tmp_path / "r")
    footer = tmp_path / "footer.csv"
    footer.write_text("\n".join([*lines, "mean,,median,"]) + "\n")
    assert_clean_error(cli("evaluate", "-p", footer, *args), "row 6 is not data (line 8, id 'mean')",
                       "predicted_lat")
    second_header = tmp_path / "twice.csv"
    second_header.write_text("\n".join([*lines[:4], lines[0], *lines[4:]]) + "\n")
    assert_clean_error(cli("evaluate", "-p", second_header, *args), "row 3 is not data (line 5, id 'img_id')")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("columns", "needles"), [
    ("id=img_id,lat", ("NAME=COLUMN",)),
    ("id=img_id,lat=nope,lon=predicted_long", ("lacks", "lat=nope")),
])
def test_bad_column_maps(tmp_path, cli, other_tool, columns, needles):
    theirs_path, truth_path = other_tool
    assert_clean_error(cli("evaluate", "-p", theirs_path, "--columns", columns, "-t", truth_path,
                           "--truth-columns", "id=IMG,lat=y,lon=x", "-o", tmp_path / "r"), *needles)


def test_compare_writes_a_table_and_one_cdf_per_report(tmp_path, cli, pred, truth, titles):
    write_report(pred, truth, tmp_path / "good")
    write_report(pred.assign(lat=-pred["lat"]), truth, tmp_path / "flipped")
    table = write_comparison([tmp_path / "good", tmp_path / "flipped"], tmp_path / "cmp")
    assert table.index.tolist() == ["good", "flipped"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert md.splitlines()[0] == "| metric | good | flipped |"
    axes = titles["comparison_cdf.png:axes"]
    assert [line.get_label() for line in axes[0].get_lines() if not line.get_label().startswith("_")] == \
        ["good (n = 6)", "flipped (n = 6)"]
    truth_path = write_manifest(truth, tmp_path / "truth.parquet")
    pred_path = tmp_path / "p.csv"
    pred.to_csv(pred_path, index=False)
    result = cli("evaluate", "-p", pred_path, "-t", truth_path, "-o", tmp_path / "new", "--name", "mine",
                 "--compare", tmp_path / "flipped")
    assert result.exit_code == 0, result
    assert (tmp_path / "new" / "comparison.md").read_text().splitlines()[0] == "| metric | mine | flipped |"
    assert (tmp_path / "new" / "comparison_cdf.png").is_file()
