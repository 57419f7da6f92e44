"""Ingest: EXIF GPS from generated JPEGs, photos without GPS, corrupt files, splits, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from pigeon.data import image_views, read_manifest
from pigeon.data.ingest import find_photos, ingest_photos, read_photo_info
from pigeon.errors import ArtifactNotFoundError, InputError
from tests.support import assert_clean_error


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    deg, minutes = int(value), int(value % 1 * 60)
    seconds = round((value - deg - minutes / 60) * 3600 * 1000)
    return IFDRational(deg, 1), IFDRational(minutes, 1), IFDRational(seconds, 1000)


def make_jpeg(path: Path, lat: float | None = None, lon: float | None = None, heading: float | None = None,
              taken: str | None = None, offset: str | None = None, size=(48, 32)) -> Path:
    """A small JPEG whose EXIF holds the given GPS position, heading and capture time."""
    exif = Image.Exif()
    if lat is not None:
        gps = {ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S", ExifTags.GPS.GPSLatitude: _dms(lat),
               ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W", ExifTags.GPS.GPSLongitude: _dms(lon)}
        if heading is not None:
            gps[ExifTags.GPS.GPSImgDirection] = IFDRational(round(heading * 100), 100)
        exif[ExifTags.IFD.GPSInfo] = gps
    if taken is not None:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        sub[ExifTags.Base.DateTimeOriginal] = taken
        if offset:
            sub[ExifTags.Base.OffsetTimeOriginal] = offset
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, exif=exif, quality=90)
    return path


PLACES = {  # name: (lat, lon), one per hemisphere quadrant
    "paris.jpg": (48.858370, 2.294481),
    "trip/sydney.jpg": (-33.856784, 151.215297),
    "trip/rio.JPG": (-22.951916, -43.210487),
    "nyc.jpeg": (40.689247, -74.044502),
}


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    for name, (lat, lon) in PLACES.items():
        make_jpeg(root / name, lat, lon, heading=123.45 if name == "paris.jpg" else None,
                  taken="2019:07:14 21:30:00" if name == "paris.jpg" else None, offset="+02:00")
    make_jpeg(root / "no_gps.jpg", taken="2020:01:02 03:04:05")
    broken = make_jpeg(root / "trip/broken.jpg", 1.0, 2.0, size=(256, 256))
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # truncated mid-scan
    (root / "fake.png").write_text("this is not an image")
    (root / "notes.txt").write_text("ignored: not an image suffix")
    make_jpeg(root / ".hidden" / "x.jpg", 1.0, 1.0)
    return root


def test_read_photo_info_reads_gps_heading_and_time(tmp_path):
    info = read_photo_info(make_jpeg(tmp_path / "a.jpg", -33.856784, -151.215297, heading=271.5,
                                     taken="2021:06:07 08:09:10", offset="-03:00"))
    assert info.lat == pytest.approx(-33.856784, abs=1e-6)
    assert info.lon == pytest.approx(-151.215297, abs=1e-6)
    assert info.heading == pytest.approx(271.5)
    assert info.taken_at == "2021-06-07T08:09:10-03:00"
    bare = read_photo_info(make_jpeg(tmp_path / "b.jpg"))
    assert (bare.lat, bare.lon, bare.heading, bare.taken_at) == (None, None, None, None)


def test_read_photo_info_rejects_invalid_gps(tmp_path):
    path = tmp_path / "c.jpg"
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}
    Image.new("RGB", (8, 8)).save(path, exif=exif)
    info = read_photo_info(path)
    assert info.lat is None and "invalid GPS" in info.gps_problem


def test_read_photo_info_raises_on_corrupt_files(photos):
    with pytest.raises(InputError, match="corrupt"):
        read_photo_info(photos / "trip/broken.jpg")
    with pytest.raises(InputError, match="not a readable image"):
        read_photo_info(photos / "fake.png")


def test_find_photos_walks_recursively_and_skips_hidden(photos):
    names = [p.relative_to(photos).as_posix() for p in find_photos(photos)]
    assert names == sorted(["fake.png", "no_gps.jpg", "nyc.jpeg", "paris.jpg", "trip/broken.jpg",
                            "trip/rio.JPG", "trip/sydney.jpg"])
    with pytest.raises(ArtifactNotFoundError):
        find_photos(photos / "missing")


def test_ingest_writes_located_unlocated_and_lists_corrupt(photos, tmp_path):
    out = tmp_path / "out" / "manifest.parquet"
    result = ingest_photos(photos, out)
    df = read_manifest(out)
    assert sorted(df["id"]) == sorted(PLACES)
    for name, (lat, lon) in PLACES.items():
        row = df.set_index("id").loc[name]
        assert (row["lat"], row["lon"]) == pytest.approx((lat, lon), abs=1e-6)
    paris = df.set_index("id").loc["paris.jpg"]
    assert paris["heading"] == pytest.approx(123.45)
    assert paris["taken_at"] == "2019-07-14T21:30:00+02:00"
    assert all(v[0].is_file() for v in image_views(df))  # paths relative to the manifest's own folder
    assert df["image"].iloc[0].startswith("../photos/")

    assert result.unlocated_path == tmp_path / "out" / "manifest-unlocated.parquet"
    unlocated = read_manifest(result.unlocated_path, require_coords=False)
    assert unlocated["id"].tolist() == ["no_gps.jpg"]
    assert unlocated["taken_at"].tolist() == ["2020-01-02T03:04:05"]
    assert unlocated["reason"].tolist() == ["no GPS in EXIF"]

    skipped = {Path(p).name: reason for p, reason in result.skipped}
    assert set(skipped) == {"broken.jpg", "fake.png"}
    assert "corrupt" in skipped["broken.jpg"]


def test_ingest_with_split_is_seeded_and_proportional(tmp_path):
    root = tmp_path / "p"
    for i in range(20):
        make_jpeg(root / f"{i:02d}.jpg", float(i), float(-i), size=(8, 8))
    a = ingest_photos(root, tmp_path / "a.csv", split=(0.6, 0.2, 0.2), seed=1).located
    b = ingest_photos(root, tmp_path / "b.csv", split=(0.6, 0.2, 0.2), seed=1).located
    c = ingest_photos(root, tmp_path / "c.csv", split=(0.6, 0.2, 0.2), seed=2).located
    assert a["split"].value_counts().to_dict() == {"train": 12, "val": 4, "test": 4}
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()
    assert read_manifest(tmp_path / "a.csv")["split"].tolist() == a["split"].tolist()
    assert not (tmp_path / "a-unlocated.csv").exists()  # every photo had GPS


def test_ingest_without_any_gps_writes_only_the_unlocated_file(tmp_path):
    make_jpeg(tmp_path / "p" / "a.jpg")
    result = ingest_photos(tmp_path / "p", tmp_path / "m.parquet")
    assert result.manifest_path is None and not (tmp_path / "m.parquet").exists()
    assert result.unlocated_path.is_file()


def test_ingest_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        ingest_photos(tmp_path / "empty", tmp_path / "m.parquet")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(InputError, match="none of the 1 image files could be read"):
        ingest_photos(tmp_path / "bad", tmp_path / "m.parquet")
    with pytest.raises(InputError, match="unsupported output format"):
        ingest_photos(tmp_path / "bad", tmp_path / "m.json")


def test_cli_ingest(photos, tmp_path, cli):
    out = tmp_path / "m.parquet"
    result = cli("data", "ingest", photos, "-o", out, "--split", "0.5,0.25,0.25", "--seed", "3")
    assert result.exit_code == 0, result
    assert "4 photos with GPS (train 2, val 1, test 1)" in result.stdout
    assert "1 photos without GPS" in result.stdout
    assert "2 unreadable file(s) skipped" in result.stdout
    assert "broken.jpg" in result.stderr and "fake.png" in result.stderr
    assert len(read_manifest(out)) == 4


@pytest.mark.parametrize(("args", "needle"), [
    (("--split", "0.9,0.2,0.1"), "--fractions"),
    (("--fractions", "0.8,0.2"), "--fractions"),
    (("--by", "country"), "unknown split method"),
])
def test_cli_ingest_bad_split(photos, tmp_path, cli, args, needle):
    assert_clean_error(cli("data", "ingest", photos, "-o", tmp_path / "m.parquet", *args), needle)


def test_cli_ingest_bad_inputs(tmp_path, cli):
    assert_clean_error(cli("data", "ingest", tmp_path / "missing", "-o", tmp_path / "m.parquet"), "not found")
    (tmp_path / "empty").mkdir()
    assert_clean_error(cli("data", "ingest", tmp_path / "empty", "-o", tmp_path / "m.parquet"), "no image files")
    make_jpeg(tmp_path / "p" / "a.jpg", 1.0, 1.0)
    assert_clean_error(cli("data", "ingest", tmp_path / "p", "-o", tmp_path / "m.txt"), "unsupported output")
