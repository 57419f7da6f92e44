"""Import the public geolocation benchmarks' metadata CSVs as manifests.

=========  ==============================  ==========================================  ====================
format     metadata file                   columns read (any case)                     default image folder
=========  ==============================  ==========================================  ====================
im2gps3k   ``im2gps3k_places365.csv``      ``IMG_ID`` (file name), ``LAT``, ``LON``    ``im2gps3ktest/``
yfcc4k     ``yfcc4k_places365.csv``        ``IMG_ID`` (file name), ``LAT``, ``LON``    ``yfcc4k/``
osv5m      ``train.csv`` / ``test.csv``    ``id``, ``latitude``, ``longitude``; kept:  ``images/<split>/``
                                           ``country``, ``region``, ``city``,
                                           ``captured_at`` (as ``taken_at``)
=========  ==============================  ==========================================  ====================

IM2GPS3k and YFCC4k are the MP-16 test sets of Müller-Budack et al. (ECCV 2018, ``TIBHannover/GeoEstimation``);
OSV-5M is Astruc et al. (CVPR 2024), whose images are ``<id>.jpg``. Image folders default to the layout the
benchmarks are distributed in, relative to the CSV's folder.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pigeon._io import read_table
from pigeon.data.manifest import SPLITS, validate_manifest
from pigeon.errors import InputError, UnknownNameError


@dataclass(frozen=True)
class BenchmarkFormat:
    """How one benchmark's metadata CSV maps onto manifest columns.

    Attributes:
        id, lat, lon: source column names (lower case) of the id and of the coordinates in degrees.
        image_dir: image folder relative to the CSV's folder; ``{split}`` is filled in.
        keep: source column (lower case) -> manifest column, copied when present.
    """

    id: str
    lat: str
    lon: str
    image_dir: str
    keep: tuple[tuple[str, str], ...] = ()


#: The supported ``--format`` names.
FORMATS: dict[str, BenchmarkFormat] = {
    "im2gps3k": BenchmarkFormat("img_id", "lat", "lon", "im2gps3ktest"),
    "yfcc4k": BenchmarkFormat("img_id", "lat", "lon", "yfcc4k"),
    "osv5m": BenchmarkFormat("id", "latitude", "longitude", "images/{split}",
                             keep=(("country", "country"), ("region", "region"), ("city", "city"),
                                   ("captured_at", "taken_at"))),
}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class MissingImagesWarning(UserWarning):
    """A benchmark's image folder is absent: its manifest holds metadata only."""


def _image_name(value: str) -> str:
    return value if value.lower().endswith(_IMAGE_SUFFIXES) else f"{value}.jpg"


def _timestamps(values: pd.Series) -> pd.Series:
    """ISO 8601 strings from Unix seconds (OSV-5M's ``captured_at``) or from date strings."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().any():
        when = pd.to_datetime(numeric, unit="s", utc=True)
    else:
        when = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    return when.map(lambda t: None if pd.isna(t) else t.isoformat())


def import_benchmark(
    path: str | os.PathLike,
    fmt: str,
    image_dir: str | os.PathLike | None = None,
    split: str | None = None,
    out_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Read a benchmark's metadata CSV into a validated manifest table.

    Args:
        path: the metadata CSV (or Parquet).
        fmt: one of :data:`FORMATS`.
        image_dir: folder holding the images; default: the format's folder next to the CSV.
        split: value of the ``split`` column; default: the file's stem when it is train/val/test, else ``test``.
        out_dir: folder the manifest will be written to; ``image`` paths are made relative to it
            (default: the CSV's folder).

    Returns:
        DataFrame with ``id, image, lat, lon, split`` and the format's kept columns.

    Raises:
        UnknownNameError: ``fmt`` is not a known format.
        InputError: a required column is missing, or rows are invalid (all listed).

    Warns:
        MissingImagesWarning: the image folder does not exist. The manifest is still made (it can serve as the
            truth of ``pigeon evaluate``); commands that read the images then fail with "image file not found".
    """
    if fmt not in FORMATS:
        raise UnknownNameError("benchmark format", fmt, FORMATS, hint="use --format " + "|".join(FORMATS))
    spec, path = FORMATS[fmt], Path(path)
    raw = read_table(path, f"{fmt} metadata file")
    columns = {str(c).lower(): c for c in raw.columns}
    missing = [c for c in (spec.id, spec.lat, spec.lon) if c not in columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} for --format {fmt} "
                         f"(has {', '.join(map(str, raw.columns)) or 'none'}); is this the right --format?")
    if split is None:
        split = path.stem.lower() if path.stem.lower() in SPLITS else "test"
    if split not in SPLITS:
        raise InputError(f"split {split!r} is not one of {'/'.join(SPLITS)}")
    folder = Path(image_dir) if image_dir is not None else path.parent / spec.image_dir.format(split=split)
    rel = Path(os.path.relpath(folder.resolve(), Path(out_dir or path.parent).resolve()))
    ids = raw[columns[spec.id]].astype(str)
    df = pd.DataFrame({
        "id": ids,
        "image": [(rel / _image_name(i)).as_posix() for i in ids],
        "lat": raw[columns[spec.lat]],
        "lon": raw[columns[spec.lon]],
        "split": split,
    })
    for source, target in spec.keep:
        if source in columns:
            values = raw[columns[source]]
            df[target] = _timestamps(values) if target == "taken_at" else values
    df = validate_manifest(df, where=str(path))
    if not folder.is_dir():
        where = "image folder" if image_dir is not None else f"default image folder of --format {fmt}"
        warnings.warn(f"{folder} not found (the {where}): the manifest lists {df['image'].iat[0]}, ... without "
                      "images; fine for evaluating published predictions, pass --images DIR to embed or predict",
                      MissingImagesWarning, stacklevel=2)
    return df
