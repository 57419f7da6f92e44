"""Import of the IM2GPS3k, YFCC4k and OSV-5M metadata CSVs (small fixtures in their published layouts)."""

from __future__ import annotations

import pandas as pd
import pytest

from pigeon.data import MissingImagesWarning, image_views, import_benchmark, read_manifest
from pigeon.errors import InputError, UnknownNameError
from tests.support import assert_clean_error

IM2GPS3K = """IMG_ID,AUTHOR,LAT,LON,S3_Label,S16_Label,S365_Label,Prob_indoor,Prob_natural,Prob_urban
1000_0_aaa_1_2@N00.jpg,2@N00,48.8584,2.2945,2,12,210,0.01,0.2,0.79
1001_0_bbb_3_4@N00.jpg,4@N00,-33.8568,151.2153,1,5,33,0.05,0.9,0.05
"""
YFCC4K = """img_id,lat,lon,s3_label
5851398536,40.6892,-74.0445,2
9282341412,-22.9519,-43.2105,1
"""
OSV5M = """id,latitude,longitude,thumb_original_url,country,sequence,captured_at,region,sub-region,city,unique_country
301,35.6586,139.7454,http://x,JP,s1,1500000000,Tokyo,Minato,Tokyo,Japan
302,64.1466,-21.9426,http://y,IS,s2,1600000000,Capital Region,,Reykjavik,Iceland
"""


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_im2gps3k(tmp_path):
    (tmp_path / "im2gps3ktest").mkdir()
    df = import_benchmark(_write(tmp_path, "im2gps3k_places365.csv", IM2GPS3K), "im2gps3k")
    assert df["id"].tolist() == ["1000_0_aaa_1_2@N00.jpg", "1001_0_bbb_3_4@N00.jpg"]
    assert df["image"].tolist() == ["im2gps3ktest/1000_0_aaa_1_2@N00.jpg", "im2gps3ktest/1001_0_bbb_3_4@N00.jpg"]
    assert df[["lat", "lon"]].to_numpy().tolist() == [[48.8584, 2.2945], [-33.8568, 151.2153]]
    assert (df["split"] == "test").all()


def test_yfcc4k_lower_case_columns_and_bare_ids(tmp_path):
    (tmp_path / "yfcc4k").mkdir()
    df = import_benchmark(_write(tmp_path, "yfcc4k_places365.csv", YFCC4K), "yfcc4k")
    assert df["id"].tolist() == ["5851398536", "9282341412"]  # read as text, not numbers
    assert df["image"].tolist() == ["yfcc4k/5851398536.jpg", "yfcc4k/9282341412.jpg"]
    assert df["lon"].tolist() == [-74.0445, -43.2105]


def test_osv5m_keeps_country_region_city_and_time(tmp_path):
    (tmp_path / "meta" / "images" / "train").mkdir(parents=True)
    df = import_benchmark(_write(tmp_path / "meta", "train.csv", OSV5M), "osv5m")
    assert df["id"].tolist() == ["301", "302"]
    assert (df["split"] == "train").all()  # from the file name
    assert df["image"].tolist() == ["images/train/301.jpg", "images/train/302.jpg"]
    assert df["country"].tolist() == ["JP", "IS"]
    assert df["region"].tolist() == ["Tokyo", "Capital Region"]
    assert df["city"].tolist() == ["Tokyo", "Reykjavik"]
    assert df["taken_at"].tolist() == ["2017-07-14T02:40:00+00:00", "2020-09-13T12:26:40+00:00"]
    assert "thumb_original_url" not in df.columns


def test_image_folder_and_output_folder_make_relative_paths(tmp_path):
    csv = _write(tmp_path, "yfcc4k_places365.csv", YFCC4K)
    images = tmp_path / "data" / "yfcc"
    images.mkdir(parents=True)
    df = import_benchmark(csv, "yfcc4k", image_dir=images, split="val", out_dir=tmp_path / "manifests")
    assert df["image"].iloc[0] == "../data/yfcc/5851398536.jpg"
    assert (df["split"] == "val").all()
    df.attrs["root"] = str(tmp_path / "manifests")
    assert image_views(df)[0][0].resolve() == (images / "5851398536.jpg").resolve()


def test_errors(tmp_path):
    csv = _write(tmp_path, "x.csv", "IMG_ID,LATITUDE,LON\na.jpg,1,2\n")
    with pytest.raises(InputError, match=r"missing column\(s\) lat for --format im2gps3k"):
        import_benchmark(csv, "im2gps3k")
    with pytest.raises(InputError, match="missing column.*latitude, longitude"):
        import_benchmark(_write(tmp_path, "y.csv", IM2GPS3K), "osv5m")
    with pytest.raises(UnknownNameError, match="did you mean 'yfcc4k'"):
        import_benchmark(csv, "yfcc4")
    with pytest.raises(InputError, match=r"row 1 lat: 91 out of range \[-90, 90\] \(id 'b.jpg'\)"):
        import_benchmark(_write(tmp_path, "z.csv", "IMG_ID,LAT,LON\na.jpg,1,2\nb.jpg,91,2\n"), "im2gps3k")
    with pytest.raises(InputError, match="split 'dev'"):
        import_benchmark(_write(tmp_path, "yfcc.csv", YFCC4K), "yfcc4k", split="dev")


def test_cli_import(tmp_path, cli):
    csv = _write(tmp_path, "test.csv", OSV5M)
    (tmp_path / "images" / "test").mkdir(parents=True)
    out = tmp_path / "out" / "osv.parquet"
    result = cli("data", "import", csv, "--format", "osv5m", "-o", out)
    assert result.exit_code == 0, result
    assert "imported 2 osv5m rows (split test)" in result.stdout
    df = read_manifest(out)
    assert df["image"].iloc[0] == "../images/test/301.jpg"  # relative to the manifest's folder
    assert pd.api.types.is_float_dtype(df["lat"])


def test_cli_import_bad_inputs(tmp_path, cli):
    csv = _write(tmp_path, "m.csv", IM2GPS3K)
    out = tmp_path / "m.parquet"
    assert_clean_error(cli("data", "import", tmp_path / "nope.csv", "-f", "im2gps3k", "-o", out), "not found")
    assert_clean_error(cli("data", "import", csv, "-f", "osv5m", "-o", out), "missing column")
    assert_clean_error(cli("data", "import", csv, "-f", "mp16", "-o", out), "unknown benchmark format")
    bad = _write(tmp_path, "bad.csv", "IMG_ID,LAT,LON\na.jpg,1,200\n")
    assert_clean_error(cli("data", "import", bad, "-f", "im2gps3k", "-o", out), "row 0 lon: 200 out of range")


def test_import_without_images_warns_and_writes_the_manifest(tmp_path, cli):
    """Metadata only (to evaluate published predictions): a one-line warning, the manifest, and later a clear error."""
    csv = _write(tmp_path, "im2gps3k_places365.csv", IM2GPS3K)
    out = tmp_path / "m.parquet"
    result = cli("data", "import", csv, "-f", "im2gps3k", "-o", out)
    assert result.exit_code == 0, result
    warning = result.stderr.strip()
    assert len(warning.splitlines()) == 1 and warning.startswith("warning:") and "Traceback" not in warning
    assert "im2gps3ktest not found" in warning and "default image folder of --format im2gps3k" in warning
    assert "--images" in warning
    df = read_manifest(out)
    assert df["id"].tolist() == ["1000_0_aaa_1_2@N00.jpg", "1001_0_bbb_3_4@N00.jpg"]
    assert df["image"].tolist() == ["im2gps3ktest/1000_0_aaa_1_2@N00.jpg", "im2gps3ktest/1001_0_bbb_3_4@N00.jpg"]
    result = cli("data", "import", csv, "-f", "im2gps3k", "--images", tmp_path / "pics", "-o", out)
    assert result.exit_code == 0 and "pics not found (the image folder)" in result.stderr
    with pytest.warns(MissingImagesWarning, match="pics not found"):
        import_benchmark(csv, "im2gps3k", image_dir=tmp_path / "pics")
    (tmp_path / "pics").mkdir()
    result = cli("data", "import", csv, "-f", "im2gps3k", "--images", tmp_path / "pics", "-o", out)
    assert result.exit_code == 0 and result.stderr == ""


def test_metadata_only_manifest_serves_as_truth_and_fails_clearly_where_images_are_needed(tmp_path, cli):
    from pigeon.data import image_views
    from pigeon.images import load_image

    csv = _write(tmp_path, "im2gps3k_places365.csv", IM2GPS3K)
    out = tmp_path / "m.parquet"
    assert cli("data", "import", csv, "-f", "im2gps3k", "-o", out).exit_code == 0
    truth = read_manifest(out)
    truth[["id", "lat", "lon"]].to_csv(tmp_path / "p.csv", index=False)
    result = cli("evaluate", "--predictions", tmp_path / "p.csv", "--truth", out, "-o", tmp_path / "report")
    assert result.exit_code == 0, result
    assert (tmp_path / "report" / "metrics.json").is_file()
    with pytest.raises(InputError, match="image file not found"):
        load_image(image_views(truth)[0][0])
