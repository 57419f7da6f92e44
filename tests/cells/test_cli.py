"""``pigeon cells build|plot|stats|export`` through the real entry point."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely

from tests.support.cells import MAX_SIZE
from tests.support import assert_clean_error


@pytest.fixture(scope="module")
def files(tmp_path_factory, toy_points, toy_areas):
    root = tmp_path_factory.mktemp("cells_cli")
    lat, lon = toy_points
    n = len(lat)
    split = np.where(np.arange(n) % 10 == 0, "test", "train")
    pd.DataFrame({"id": [f"p{i}" for i in range(n)], "image": [f"p{i}.jpg" for i in range(n)],
                  "lat": lat, "lon": lon, "split": split}).to_csv(root / "manifest.csv", index=False)
    toy_areas.to_parquet(root / "areas.parquet")
    return root


@pytest.fixture(scope="module")
def built(files):
    from tests.support import invoke

    result = invoke("cells", "build", files / "manifest.csv", "--boundaries", files / "areas.parquet",
                    "--min-size", "20", "--max-size", "40", "-o", files / "cells")
    assert result.exit_code == 0, result.stderr
    return files / "cells", result


def test_build_uses_the_train_split_and_the_given_boundaries(built, toy_points):
    from pigeon.cells import GeoCells

    folder, result = built
    cells = GeoCells.load(folder)
    n_train = sum(1 for i in range(len(toy_points[0])) if i % 10 != 0)
    assert int(cells.table["n_train"].sum()) == n_train
    assert cells.meta["config"]["boundaries"].endswith("areas.parquet")
    assert (cells.table["n_train"] <= 40).all() and cells.meta["config"]["rules"] == "bounded"  # the default
    assert f"{len(cells)} semantic cells from {n_train} points" in result.stdout


def test_build_on_two_processes_gives_the_same_cells(cli, built, files, tmp_path):
    from pigeon.cells import GeoCells

    result = cli("cells", "build", files / "manifest.csv", "--boundaries", files / "areas.parquet", "--min-size", "20",
                 "--max-size", "40", "--jobs", "2", "-o", tmp_path / "cells")
    assert result.exit_code == 0, result.stderr
    serial, parallel = GeoCells.load(built[0]), GeoCells.load(tmp_path / "cells")
    assert serial.meta["config"]["n_jobs"] is None and parallel.meta["config"]["n_jobs"] == 2
    assert len(parallel) == len(serial) and shapely.equals_exact(parallel.table.geometry.to_numpy(),
                                                                 serial.table.geometry.to_numpy(), 0).all()
    np.testing.assert_array_equal(parallel.assign(*serial.centroids.T), serial.assign(*serial.centroids.T))


def test_build_reads_only_the_coordinates(cli, files, tmp_path):
    """A table of lat, lon and split alone is enough (no id or image column): the points are all that is read."""
    from pigeon.cells import GeoCells

    df = pd.read_csv(files / "manifest.csv")[["lat", "lon", "split"]]
    df.to_parquet(tmp_path / "points.parquet")
    result = cli("cells", "build", tmp_path / "points.parquet", "--method", "naive", "--max-size", "40",
                 "--boundaries", files / "areas.parquet", "-o", tmp_path / "cells")
    assert result.exit_code == 0, result.stderr
    assert int(GeoCells.load(tmp_path / "cells").table["n_train"].sum()) == int((df["split"] == "train").sum())
    df[["lon", "split"]].to_parquet(tmp_path / "no_lat.parquet")
    assert_clean_error(cli("cells", "build", tmp_path / "no_lat.parquet", "-o", tmp_path / "c"), "lat")


def test_build_naive(cli, files):
    from pigeon.cells import GeoCells

    result = cli("cells", "build", files / "manifest.csv", "--method", "naive", "--max-size", str(MAX_SIZE),
                 "--boundaries", files / "areas.parquet", "--split", "test", "-o", files / "naive")
    assert result.exit_code == 0, result.stderr
    cells = GeoCells.load(files / "naive")
    assert cells.meta["config"]["method"] == "naive"
    assert int(cells.table["n_train"].sum()) == len(range(0, len(pd.read_csv(files / "manifest.csv")), 10))


def test_stats(cli, built):
    folder, _ = built
    result = cli("cells", "stats", folder, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["n_cells"] > 10 and stats["size"]["max"] <= 40 and stats["area_km2"]["min"] > 0
    assert stats["below_min_size"] == 1  # the island
    table = cli("cells", "stats", folder)
    assert table.exit_code == 0 and "km²" in table.stdout and f"{stats['n_cells']} semantic cells" in table.stdout


def test_plot_and_export(cli, built, tmp_path):
    folder, _ = built
    assert cli("cells", "plot", folder, "-o", tmp_path / "cells.png").exit_code == 0
    assert (tmp_path / "cells.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("cells", "plot", folder, "-o", tmp_path / "zoom.png", "--bbox", "-1,-1,11,21").exit_code == 0
    assert cli("cells", "export", folder, "-o", tmp_path / "cells.geojson").exit_code == 0
    geojson = json.loads((tmp_path / "cells.geojson").read_text())
    from pigeon.cells import GeoCells

    cells = GeoCells.load(folder)
    assert len(geojson["features"]) == len(cells)
    assert {"cell_id", "country", "admin1", "n_train", "centroid_lat"} <= set(geojson["features"][0]["properties"])


def test_errors_are_one_line(cli, files, built, tmp_path):
    folder, _ = built
    assert_clean_error(cli("cells", "build", files / "manifest.csv", "--boundaries", tmp_path / "none.gpkg",
                           "-o", tmp_path / "c"), "none.gpkg", "not found")
    assert_clean_error(cli("cells", "build", files / "manifest.csv", "--boundaries", files / "areas.parquet",
                           "--min-size", "5000", "-o", tmp_path / "c"), "min_size")
    assert_clean_error(cli("cells", "build", files / "manifest.csv", "--method", "hex", "-o", tmp_path / "c"),
                       "geocell method")
    assert_clean_error(cli("cells", "plot", folder, "-o", tmp_path / "x.png", "--bbox", "1,2,3"), "bbox")
    assert_clean_error(cli("cells", "stats", tmp_path / "missing"), "pigeon cells build")
    empty = tmp_path / "empty.csv"
    empty.write_text("id,image,lat,lon\n")
    assert_clean_error(cli("cells", "build", empty, "-o", tmp_path / "c"), "empty")
    assert_clean_error(cli("cells", "build", files / "manifest.csv", "--jobs", "0", "-o", tmp_path / "c"), "jobs")


def test_build_with_the_paper_rules_and_bad_rules(cli, files, tmp_path):
    from pigeon.cells import GeoCells

    args = ("cells", "build", files / "manifest.csv", "--boundaries", files / "areas.parquet", "--min-size", "20",
            "--max-size", "40")
    result = cli(*args, "--rules", "paper", "-o", tmp_path / "paper")
    assert result.exit_code == 0, result.stderr
    assert GeoCells.load(tmp_path / "paper").meta["config"]["rules"] == "paper"
    assert_clean_error(cli(*args, "--rules", "loose", "-o", tmp_path / "x"), "geocell rules", "bounded", "paper")
    assert not (tmp_path / "x").exists()
