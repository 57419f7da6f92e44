"""Build a manifest from a folder of photos: EXIF GPS position, compass heading and capture time.

Photos with a usable GPS fix become manifest rows; photos without one go to a second table
(``<name>-unlocated.<ext>``), the set to geolocate later; unreadable or corrupt files are skipped and listed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from PIL import ExifTags, Image

from pigeon._progress import track
from pigeon.data.manifest import write_manifest
from pigeon.data._config import SplitConfig
from pigeon.data.split import split_manifest
from pigeon.errors import ArtifactNotFoundError, InputError
from pigeon.images import open_image

#: File suffixes (lower case) that ingest treats as photos.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
_EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"
_DECODE_SHORT_SIDE = 32  # the decode check's target: JPEG draft at 1/8 scale still reads every compressed block


@dataclass(frozen=True)
class PhotoInfo:
    """What a photo's EXIF says about where and when it was taken (None where it says nothing).

    Attributes:
        lat, lon: GPS position, degrees WGS84.
        heading: GPS image direction, degrees clockwise from north in [0, 360).
        taken_at: capture time, ISO 8601 (with the UTC offset when EXIF records one).
        gps_problem: why a GPS block that is present was not usable, else None.
    """

    lat: float | None = None
    lon: float | None = None
    heading: float | None = None
    taken_at: str | None = None
    gps_problem: str | None = None


@dataclass
class IngestResult:
    """Outcome of :func:`ingest_photos`.

    Attributes:
        located: manifest rows (``id, image, lat, lon, heading, taken_at[, split]``).
        unlocated: photos without a usable GPS fix (``id, image, taken_at, reason``).
        skipped: ``(path, reason)`` for every unreadable or corrupt file.
        manifest_path: where ``located`` was written (None when no photo had GPS).
        unlocated_path: where ``unlocated`` was written (None when every photo had GPS).
    """

    located: pd.DataFrame
    unlocated: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    manifest_path: Path | None = None
    unlocated_path: Path | None = None


def _float(value) -> float:
    """An EXIF number (int, float, IFDRational, or a (num, den) pair) as float; NaN if it has no value."""
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if float(den) else math.nan
    try:
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan


def _degrees(dms, ref) -> float:
    """Degrees from EXIF (degrees, minutes, seconds) and a hemisphere reference (N/S/E/W)."""
    parts = [_float(v) for v in (dms if isinstance(dms, (tuple, list)) else (dms,))]
    value = sum(p / 60.0**i for i, p in enumerate(parts[:3]))
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    return -value if str(ref).strip().upper() in ("S", "W") else value


def _parse_time(value, offset=None) -> str | None:
    """ISO 8601 from an EXIF ``YYYY:MM:DD HH:MM:SS`` string (None if blank or invalid)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.strptime(value.strip().rstrip("\x00"), _EXIF_TIME_FORMAT)
    except ValueError:
        return None
    iso = when.isoformat()
    if isinstance(offset, str) and len(offset.strip()) == 6 and offset.strip()[0] in "+-":
        iso += offset.strip()
    return iso


def _photo_info(exif: Image.Exif) -> PhotoInfo:
    """Read GPS and capture time out of a PIL ``Exif`` mapping."""
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    taken_at = _parse_time(sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.OffsetTimeOriginal))
    taken_at = taken_at or _parse_time(exif.get(ExifTags.Base.DateTime))
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if ExifTags.GPS.GPSLatitude not in gps or ExifTags.GPS.GPSLongitude not in gps:
        return PhotoInfo(taken_at=taken_at)
    lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"))
    lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"))
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        return PhotoInfo(taken_at=taken_at, gps_problem=f"invalid GPS position ({lat}, {lon})")
    heading = _float(gps.get(ExifTags.GPS.GPSImgDirection, math.nan))
    return PhotoInfo(lat=lat, lon=lon, heading=heading % 360.0 if math.isfinite(heading) else None,
                     taken_at=taken_at)


def read_photo_info(path: str | os.PathLike) -> PhotoInfo:
    """Read a photo's EXIF GPS position, heading and capture time, checking that its pixels decode.

    Args:
        path: an image file.

    Returns:
        :class:`PhotoInfo`; fields the file does not record are None.

    Raises:
        InputError: the file is not an image, is truncated or corrupt, or is over the pixel or aspect-ratio limit
            of :mod:`pigeon.images`.
    """
    pending = open_image(path, target=_DECODE_SHORT_SIDE)
    pending.load()  # draft mode for JPEG: every compressed block is still read
    return _photo_info(pending.exif)


def find_photos(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursively, hidden files and folders skipped), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ArtifactNotFoundError(root, "pass an existing folder of photos")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def unlocated_path(manifest_path: str | os.PathLike) -> Path:
    """Where ingest writes the photos without GPS: ``photos.parquet`` -> ``photos-unlocated.parquet``."""
    path = Path(manifest_path)
    return path.with_name(f"{path.stem}-unlocated{path.suffix}")


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), root)).as_posix()
    except ValueError:  # another drive (Windows): keep the absolute path
        return str(path.resolve())


def _read_photos(paths: list[Path], photos_dir: Path, root: Path) -> tuple[list[dict], list[dict], list]:
    """Rows of the photos with GPS, rows of those without (and why), and the unreadable files (path, error)."""
    located, unlocated, skipped = [], [], []
    for path in track(paths, "ingest"):
        photo_id = path.relative_to(photos_dir).as_posix()
        try:
            info = read_photo_info(path)
        except InputError as exc:
            skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
            continue
        row = {"id": photo_id, "image": _relative(path, root)}
        if info.lat is None:
            unlocated.append({**row, "taken_at": info.taken_at, "reason": info.gps_problem or "no GPS in EXIF"})
        else:
            located.append({**row, "lat": info.lat, "lon": info.lon, "heading": info.heading,
                            "taken_at": info.taken_at})
    if not located and not unlocated:
        raise InputError(f"{photos_dir}: none of the {len(paths)} image files could be read "
                         f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return located, unlocated, skipped


def ingest_photos(
    photos_dir: str | os.PathLike,
    out: str | os.PathLike,
    split: SplitConfig | tuple[float, float, float] | None = None,
    seed: int = 0,
) -> IngestResult:
    """Walk a folder of photos and write a manifest of those with EXIF GPS.

    Ids are the photos' paths relative to ``photos_dir``; ``image`` paths are relative to the manifest's folder.

    Args:
        photos_dir: folder searched recursively for :data:`IMAGE_SUFFIXES` files.
        out: manifest path (``.parquet`` or ``.csv``); photos without GPS go to :func:`unlocated_path` of it.
        split: optional :class:`~pigeon.data.split.SplitConfig`, or (train, val, test) fractions of a random
            split; adds a ``split`` column to the located rows (recorded in the manifest's metadata).
        seed: seed of a split given as fractions.

    Returns:
        :class:`IngestResult` with both tables, the skipped files and the paths written.

    Raises:
        InputError: the folder holds no image files, or none of them is readable.
    """
    photos_dir, out = Path(photos_dir), Path(out)
    if split is not None:
        split = SplitConfig.of(split, seed).validate()
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise InputError(f"{out}: unsupported output format {out.suffix!r}; use .parquet or .csv")
    paths = find_photos(photos_dir)
    if not paths:
        raise InputError(f"{photos_dir}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    root = out.resolve().parent
    located, unlocated, skipped = _read_photos(paths, photos_dir, root)
    result = IngestResult(
        located=pd.DataFrame(located, columns=["id", "image", "lat", "lon", "heading", "taken_at"]),
        unlocated=pd.DataFrame(unlocated, columns=["id", "image", "taken_at", "reason"]),
        skipped=skipped,
    )
    result.located["heading"] = result.located["heading"].astype("float64")
    if split is not None and located:
        result.located.attrs["root"] = str(root)
        result.located = split_manifest(result.located, split)
    if located:
        result.manifest_path = write_manifest(result.located, out)
    if unlocated:
        result.unlocated_path = write_manifest(result.unlocated, unlocated_path(out))
    return result
