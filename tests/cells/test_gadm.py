"""``pigeon cells build --boundaries`` with a GADM 4.1-like GeoPackage written here (layers ``ADM_0``..``ADM_2``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely

from tests.support import invoke

ENCLAVE = shapely.box(4.0, 44.0, 4.5, 44.5)  # a piece of Ouest inside Est, like Baarle-Hertog
NORD_OUEST, NORD_EST = shapely.box(0, 43, 3, 46), shapely.difference(shapely.box(3, 43, 6, 46), ENCLAVE)
PROVENCE, CORSE = shapely.box(0, 40, 6, 43), shapely.box(8, 41, 9, 43)
NORTH_ISLAND, SOUTH_ISLAND = shapely.box(170, -40, 175, -35), shapely.box(165, -47, 169, -41)
KOSOVO, MONACO = shapely.box(20, 42, 21, 43), shapely.box(7.40, 43.70, 7.45, 43.75)


def multi(*geoms):
    """GADM stores every shape as a MultiPolygon."""
    return shapely.MultiPolygon([p for g in geoms for p in shapely.get_parts(g)])


def write_gadm(path):
    """Levels as in ``gadm_410-levels.gpkg``: ADM_0 (GID_0, COUNTRY), ADM_1 (+ GID_1, NAME_1, TYPE_1, ENGTYPE_1),
    ADM_2 (+ GID_2, NAME_2, TYPE_2, ENGTYPE_2); France and New Zealand in several parts, Kosovo's GID_0 "XKO",
    no level 2 for New Zealand and Kosovo, only level 0 for Monaco."""
    import geopandas as gpd

    adm0 = gpd.GeoDataFrame({"GID_0": ["FRA", "NZL", "XKO", "MCO"], "COUNTRY": ["France", "New Zealand", "Kosovo",
                                                                                 "Monaco"]},
                            geometry=[multi(NORD_OUEST, NORD_EST, ENCLAVE, PROVENCE, CORSE),
                                      multi(NORTH_ISLAND, SOUTH_ISLAND), multi(KOSOVO), multi(MONACO)],
                            crs="EPSG:4326")
    adm1 = gpd.GeoDataFrame({
        "GID_0": ["FRA", "FRA", "NZL", "NZL", "XKO"], "COUNTRY": ["France"] * 2 + ["New Zealand"] * 2 + ["Kosovo"],
        "GID_1": ["FRA.1_1", "FRA.2_1", "NZL.1_1", "NZL.2_1", "XKO.1_1"],
        "NAME_1": ["Nord", "Sud", "North Island", "South Island", "Prishtina"],
        "TYPE_1": ["Région"] * 2 + ["Island"] * 2 + ["Komuna"],
        "ENGTYPE_1": ["Region"] * 2 + ["Island"] * 2 + ["District"],
    }, geometry=[multi(NORD_OUEST, NORD_EST, ENCLAVE), multi(PROVENCE, CORSE), multi(NORTH_ISLAND),
                 multi(SOUTH_ISLAND), multi(KOSOVO)], crs="EPSG:4326")
    adm2 = gpd.GeoDataFrame({
        "GID_0": ["FRA"] * 4, "COUNTRY": ["France"] * 4, "GID_1": ["FRA.1_1", "FRA.1_1", "FRA.2_1", "FRA.2_1"],
        "NAME_1": ["Nord", "Nord", "Sud", "Sud"], "GID_2": ["FRA.1.1_1", "FRA.1.2_1", "FRA.2.1_1", "FRA.2.2_1"],
        "NAME_2": ["Ouest", "Est", "Provence", "Corse"], "TYPE_2": ["Département"] * 4,
        "ENGTYPE_2": ["Department"] * 4,
    }, geometry=[multi(NORD_OUEST, ENCLAVE), multi(NORD_EST), multi(PROVENCE), multi(CORSE)], crs="EPSG:4326")
    for name, layer in (("ADM_0", adm0), ("ADM_1", adm1), ("ADM_2", adm2)):
        layer.to_file(path, layer=name, driver="GPKG")


@pytest.fixture(scope="module")
def gadm_cells(tmp_path_factory):
    root = tmp_path_factory.mktemp("gadm")
    write_gadm(root / "gadm_410-levels.gpkg")
    rng = np.random.default_rng(0)
    counts = [(NORD_OUEST, 40), (ENCLAVE, 5), (NORD_EST, 40), (PROVENCE, 40), (CORSE, 35), (NORTH_ISLAND, 40),
              (SOUTH_ISLAND, 40), (KOSOVO, 35), (MONACO, 31)]
    lat, lon = [], []
    for geom, n in counts:
        x0, y0, x1, y1 = geom.bounds
        pts = []
        while len(pts) < n:
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if geom.contains(shapely.Point(x, y)):
                pts.append((y, x))
        lat += [p[0] for p in pts]
        lon += [p[1] for p in pts]
    pd.DataFrame({"id": np.arange(len(lat)), "image": [f"{i}.jpg" for i in range(len(lat))], "lat": lat,
                  "lon": lon}).to_csv(root / "manifest.csv", index=False)
    result = invoke("cells", "build", root / "manifest.csv", "--boundaries", root / "gadm_410-levels.gpkg",
                    "--min-size", "30", "--max-size", "60", "-o", root / "cells")
    assert result.exit_code == 0, result.stderr
    return root


def test_gadm_levels_names_and_fallbacks(gadm_cells):
    from pigeon.cells import GeoCells

    cells = GeoCells.load(gadm_cells / "cells")
    table = cells.table.set_index(["country", "admin1", "admin2"], drop=False)
    assert cells.meta["config"]["boundaries"].endswith("gadm_410-levels.gpkg")
    assert sorted(table["country"]) == ["FR"] * 4 + ["MC", "NZ", "NZ", "XK"]
    assert set(table.loc["FR", "admin2"]) == {"Ouest", "Est", "Provence", "Corse"}  # level 2 where it exists
    assert table.loc[("NZ", "South Island", None), "n_train"] == 40  # level 1 for New Zealand
    assert table.loc[("MC", None, None), "n_train"] == 31  # level 0 only
    assert table.loc[("XK", "Prishtina", None), "n_train"] == 35  # GID_0 XKO is Kosovo


def test_gadm_exclave_joins_the_cell_around_it_and_islands_stay(gadm_cells):
    from pigeon.cells import GeoCells

    cells = GeoCells.load(gadm_cells / "cells")
    table = cells.table.set_index("admin2")
    assert table.loc["Ouest", "n_train"] == 40 and table.loc["Est", "n_train"] == 45  # the enclave's 5 points
    assert shapely.equals(table.geometry["Est"], shapely.box(3, 43, 6, 46))
    assert shapely.equals(table.geometry["Ouest"], NORD_OUEST)
    assert cells.assign([44.25], [4.25]).tolist() == [int(table.loc["Est", "cell_id"])]
    stats = json.loads(invoke("cells", "stats", gadm_cells / "cells", "--json").stdout)
    assert stats["cells_with_exclaves"] == 0 and stats["multipart_cells"] == 0
    assert stats["below_min_size"] == 0
    text = invoke("cells", "stats", gadm_cells / "cells").stdout
    assert "parts per cell: median 1, max 1" in text
