"""Synthetic captions: templates, inclusion probabilities, seeding, "the" countries, the CLI."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pigeon.errors import InputError, UnknownNameError
from pigeon.geography import KOPPEN_NAMES, THE_COUNTRIES, captions, compass_direction, countries, country_phrase
from tests.support import assert_clean_error

SV_LOCATION = re.compile(
    r"A Street View photo (close to the town of (?P<town>[^.]+?) )?(in the region of (?P<region>[^.]+?) )?"
    r"in (?P<country>[^.]+)\."
)
SV_EXTRAS = {
    "climate": re.compile(r"This location has an? (?P<v>[a-z -]+) climate\."),
    "drive": re.compile(r"In this location, people drive on the (?P<v>left|right) side of the road\."),
    "compass": re.compile(r"This photo is facing (?P<v>north|east|south|west)\."),
    "month": re.compile(r"The photo was taken in (?P<v>[A-Z][a-z]+)\."),
}


def _rows(n: int, **over) -> pd.DataFrame:
    base = dict(country_name="Netherlands", admin1="North Holland", city="Haarlem", koppen="Cfb",
                drive_side="right", heading=100.0, month=7)
    return pd.DataFrame({k: [v] * n for k, v in (base | over).items()})


def _parse(text: str) -> dict:
    found = {}
    loc = SV_LOCATION.match(text)
    if loc:
        found["location"] = loc.groupdict()
        text = text[loc.end():]
    for sentence in filter(None, (s.strip() for s in re.split(r"(?<=\.)\s", text))):
        kind = [k for k, rx in SV_EXTRAS.items() if rx.fullmatch(sentence)]
        assert len(kind) == 1, sentence
        found[kind[0]] = SV_EXTRAS[kind[0]].fullmatch(sentence)["v"]
    return found


def test_streetview_follows_templates_and_probabilities():
    n = 4000
    parts = [_parse(t) for t in captions(_rows(n), "streetview", seed=1)]
    rate = {k: np.mean([k in p for p in parts]) for k in ("location", "climate", "drive", "compass", "month")}
    has_climate = np.array(["climate" in p for p in parts])
    region = np.mean([p["location"]["region"] is not None for p in parts if "location" in p])
    town = np.mean([p["location"]["town"] is not None for p in parts if "location" in p])
    assert rate["climate"] == pytest.approx(0.4, abs=0.03)
    assert rate["compass"] == pytest.approx(0.3, abs=0.03) and rate["month"] == pytest.approx(0.3, abs=0.03)
    assert region == pytest.approx(0.6, abs=0.03) and town == pytest.approx(0.4, abs=0.03)
    # location: always without climate, p = 0.7 with it; driving side only without climate, p = 0.3
    assert all("location" in p for p, c in zip(parts, has_climate) if not c)
    assert np.mean(["location" in p for p, c in zip(parts, has_climate) if c]) == pytest.approx(0.7, abs=0.04)
    assert not any("drive" in p for p, c in zip(parts, has_climate) if c)
    assert np.mean(["drive" in p for p, c in zip(parts, has_climate) if not c]) == pytest.approx(0.3, abs=0.03)
    first = next(p for p in parts if "location" in p)
    assert first["location"]["country"] == "the Netherlands"
    assert {p.get("compass") for p in parts} <= {None, "east"} and {p.get("month") for p in parts} <= {None, "July"}
    assert {p.get("climate") for p in parts} <= {None, KOPPEN_NAMES["Cfb"]}


def test_photo_style_templates():
    texts = captions(_rows(2000, country_name="Kenya", koppen="Aw", drive_side="left"), "photo", seed=0)
    for text in texts:
        assert "facing" not in text and "taken in" not in text
        if text.startswith("A photo I took"):
            assert text.startswith(
                "A photo I took close to the town of Haarlem in the region of North Holland in Kenya.")
    climate = texts.str.contains("This location has a tropical savanna climate.", regex=False)
    assert climate.mean() == pytest.approx(0.45, abs=0.03)
    assert (~texts[climate].str.startswith("A photo")).mean() == pytest.approx(0.2, abs=0.04)
    drive = texts.str.contains("drive on the left", regex=False)
    assert not (drive & climate).any() and drive[~climate].mean() == pytest.approx(0.2, abs=0.03)


def test_captions_are_seeded():
    df = _rows(50)
    pd.testing.assert_series_equal(captions(df, seed=3), captions(df, seed=3))
    assert not captions(df, seed=3).equals(captions(df, seed=4))
    assert captions(df.iloc[:10], seed=3).equals(captions(df, seed=3).iloc[:10])


def test_missing_values_and_sea():
    df = _rows(200, city=None, admin1=np.nan, koppen=None, drive_side=None, heading=np.nan, month=pd.NA)
    assert set(captions(df, seed=0)) == {"A Street View photo in the Netherlands."}
    sea = _rows(1, country_name=None, city=None, admin1=None, koppen=None, drive_side=None, month=None)
    assert captions(sea, seed=0).iloc[0].startswith("A Street View photo at sea.")


def test_country_names_that_take_the():
    names = set(countries()["name"])
    assert THE_COUNTRIES <= names | {"Gambia"}  # every listed name is spelled as countries() spells it
    assert country_phrase("United States") == "the United States" and country_phrase("France") == "France"


@pytest.mark.parametrize("heading, want", [(0, "north"), (45, "north"), (45.5, "east"), (135, "east"),
                                           (180, "south"), (225.1, "west"), (315, "west"), (316, "north"),
                                           (-90, "west"), (720, "north")])
def test_compass_bins(heading, want):
    assert compass_direction(heading) == want


def test_caption_errors():
    with pytest.raises(UnknownNameError, match="streetview"):
        captions(_rows(1), style="street")
    with pytest.raises(InputError, match="empty"):
        captions(_rows(0))


def test_cli_enrich_and_captions(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a", "b"], "image": ["a.jpg", "b.jpg"], "lat": [52.38, 0.0], "lon": [4.64, -140.0],
                  "taken_at": ["2021-07-04", None]}).to_csv(manifest, index=False)
    result = cli("data", "enrich", manifest, "-o", tmp_path / "e.parquet")
    assert result.exit_code == 0, result
    enriched = pd.read_parquet(tmp_path / "e.parquet")
    assert enriched["country"].iloc[0] == "NL" and enriched["country"].isna().iloc[1] and enriched["month"].tolist()[0] == 7
    result = cli("data", "captions", tmp_path / "e.parquet", "-o", tmp_path / "c.csv", "--style", "photo",
                 "--seed", "2")
    assert result.exit_code == 0, result
    out = pd.read_csv(tmp_path / "c.csv")
    assert "the Netherlands" in out["caption"].iloc[0] or out["caption"].iloc[0].startswith("This location")
    # captions of a raw manifest enrich it on the fly and match the enriched manifest's
    raw = cli("data", "captions", manifest, "-o", tmp_path / "c2.csv", "--style", "photo", "--seed", "2")
    assert raw.exit_code == 0 and pd.read_csv(tmp_path / "c2.csv")["caption"].tolist() == out["caption"].tolist()


def test_cli_errors(cli, tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a"], "image": ["a.jpg"], "lat": [10.0], "lon": [10.0]}).to_csv(manifest, index=False)
    assert_clean_error(cli("data", "captions", manifest, "-o", tmp_path / "c.csv", "--style", "poem"), "style")
    bad_raster = cli("data", "enrich", manifest, "-o", tmp_path / "e.csv", "--raster", "oops")
    assert_clean_error(bad_raster, "COLUMN=PATH")
    assert_clean_error(cli("data", "enrich", tmp_path / "none.csv", "-o", tmp_path / "e.csv"), "not found")
    empty = tmp_path / "empty.csv"
    empty.write_text("id,image,lat,lon\n")
    assert_clean_error(cli("data", "enrich", empty, "-o", tmp_path / "e.csv"), "empty")
