"""WebDataset tar shards: written from a manifest, read (locally or through any fsspec URL) by ``pigeon embed``.

A sample follows WebDataset's convention (the members sharing a name up to its first dot)::

    000000042.jpg         the image (.png or .webp too); several views: 000000042.0.jpg, 000000042.1.jpg, ...
    000000042.json        {"id": ..., "lat": ..., "lon": ..., "split": ..., any other manifest column}

Other tools' shards read the same way: the id is the json's ``id`` (else the sample key), the coordinates its
``lat``/``latitude`` and ``lon``/``lng``/``longitude``, or a ``txt`` member holding ``lat,lon``. OSV-5M's
WebDataset copy (``osv5m-wds``: ``train/*.tar``, ``test/*.tar``, one ``jpg`` + ``json`` per image with the CSV's
columns) is read by :func:`import_shards` with ``fmt="osv5m-wds"``.

A folder written by :func:`write_shards`::

    shard-000000.tar ...  the shards, each renamed into place once complete
    index.parquet         what is where: the manifest's columns (but ``image``) + shard, key, n_views
    failed.csv            id, view, image, error: images that could not be read (or resized)
    meta.json             provenance: the source manifest and its hash, size, resize, pattern, counts

Bounded reading: every member's size is checked from its tar header before it is read (WebDataset's own
iterator reads each member whole first), and a shard that ends inside a member is reported with that member.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pigeon._io import atomic_path, provenance, read_json, write_json
from pigeon.errors import InputError, MissingDependencyError, PigeonError

INDEX, FAILED, META = "index.parquet", "failed.csv", "meta.json"
SHARD_NAME = "shard-{:06d}.tar"
FAILED_COLUMNS = ["id", "view", "image", "error"]
#: Largest shard member read (bytes): larger members are listed as failures, unread.
MAX_MEMBER_BYTES = 64 * 2**20
#: Largest metadata (json / txt) member read.
MAX_META_BYTES = 2**20
#: Most samples read from one shard (a store shard holds them in memory until it is written).
MAX_SAMPLES_PER_SHARD = 1_000_000
#: Most shards one pattern may name (a typo like ``{0..999999999}`` is refused before any work).
MAX_SHARDS = 200_000
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
SHARD_FORMATS = ("pigeon", "osv5m-wds")
_LAT, _LON = ("lat", "latitude"), ("lon", "lng", "long", "longitude")
_OSV5M_KEEP = (("country", "country"), ("region", "region"), ("city", "city"), ("captured_at", "taken_at"))
_SHOWN = 3


@dataclass
class Sample:
    """One WebDataset sample of a shard: its key, members (extension -> bytes) and what could not be read."""

    url: str
    key: str
    members: dict[str, bytes] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (member name, error)


@dataclass
class Row:
    """What :func:`sample_row` makes of a sample: manifest fields, image members in view order, failures."""

    fields: dict[str, Any]
    views: list[tuple[str, bytes]]  # (member name, encoded image)
    problems: list[tuple[str, str]]

    @property
    def id(self) -> str:
        return str(self.fields["id"])


# --- naming shards -------------------------------------------------------------------------------------------

def expand_shards(spec: str | os.PathLike | Sequence[str]) -> list[str]:
    """The shard URLs a spec names, each checked to exist: a brace pattern, a list, or a folder of ``*.tar``.

    ``"shards/{000000..000099}.tar"``, ``"s3://bucket/osv5m/train/{0000..0489}.tar"`` (any fsspec protocol whose
    package is installed), a folder written by :func:`write_shards`, or any folder of tar files.

    Raises:
        InputError: a malformed pattern, no shard, too many, a name that is not a tar file, or missing shards.
    """
    if not isinstance(spec, (str, os.PathLike)):
        urls = [str(u) for u in spec]
    elif Path(spec).is_dir():
        urls = sorted(str(p) for p in Path(spec).iterdir() if p.name.endswith((".tar", ".tar.gz", ".tgz")))
        if not urls:
            raise InputError(f"{spec}: folder holds no .tar shard; pass a pattern like 'shards/{{000000..000009}}.tar'")
    else:
        urls = _brace_expand(str(spec))
    if not urls:
        raise InputError("no shard named; pass a pattern like 'shards/{000000..000009}.tar'")
    if len(urls) > MAX_SHARDS:
        raise InputError(f"more than {MAX_SHARDS:,} shards named; check the pattern or split the job")
    urls = [u if "://" in u else str(Path(u).resolve()) for u in urls]  # the same names from any folder or node
    bad = [u for u in urls if not u.split("?")[0].endswith((".tar", ".tar.gz", ".tgz"))]
    if bad:
        raise InputError(f"{bad[0]}: not a .tar shard; name tar files (e.g. 'shards/{{000000..000009}}.tar')")
    _check_exist(urls)
    return urls


def looks_like_shards(spec: str) -> bool:
    """Whether a command-line source names tar shards (a pattern, a URL, a .tar or a folder) and not a manifest."""
    return ("{" in spec or "://" in spec or spec.endswith((".tar", ".tar.gz", ".tgz"))
            or Path(spec).is_dir())


def _brace_expand(pattern: str) -> list[str]:
    import braceexpand

    if pattern.count("{") != pattern.count("}"):
        raise InputError(f"{pattern}: unbalanced braces; write ranges as {{000000..000099}}")
    try:
        return list(itertools.islice(braceexpand.braceexpand(pattern), MAX_SHARDS + 1))
    except braceexpand.UnbalancedBracesError:
        raise InputError(f"{pattern}: unbalanced braces; write ranges as {{000000..000099}}") from None


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of a URL, with one-line errors for unknown or uninstalled protocols."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ValueError as exc:  # "Protocol not known: xyz"
        raise InputError(f"{url}: {exc}; use a local path or an fsspec URL (s3://, gs://, https://, ...)") from None
    except ImportError as exc:
        package = re.search(r"'([\w-]+)'", str(exc))
        raise MissingDependencyError(package.group(1) if package else str(exc), purpose=f"reading {url}") from None


def _check_exist(urls: list[str]) -> None:
    missing = []
    for url in urls:
        fs, path = _filesystem(url)
        try:
            if not fs.exists(path):
                missing.append(url)
        except Exception as exc:  # network or permission: say which shard and why, on one line
            raise InputError(f"{url}: cannot reach the shard ({_short(exc)}); check the URL and credentials") from None
    if missing:
        shown = ", ".join(missing[:_SHOWN]) + (", ..." if len(missing) > _SHOWN else "")
        raise InputError(f"{len(missing)} of {len(urls)} shard(s) not found ({shown}); fix the pattern or the path")


# --- reading shards ------------------------------------------------------------------------------------------

def iter_shard(url: str, max_member_bytes: int = MAX_MEMBER_BYTES, images: bool = True) -> Iterator[Sample]:
    """The samples of one shard, in order; never raises on bad data.

    A member above ``max_member_bytes`` (``MAX_META_BYTES`` for json / txt) is left unread and listed in its
    sample's ``problems``; so is the member a truncated or corrupt shard ends in (then iteration stops).
    ``images=False`` reads only the metadata members (image members are named, with empty bytes): for importing
    the rows of other tools' shards.
    """
    from webdataset.tariterators import base_plus_ext  # WebDataset's key rule: name up to the first dot

    sample: Sample | None = None
    member, n_samples = "(tar header)", 0
    try:
        fs, path = _filesystem(url)
        with fs.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for info in tar:
                member = info.name
                key, ext = base_plus_ext(info.name)
                if not info.isreg() or key is None or key.rsplit("/", 1)[-1].startswith("__"):
                    continue
                if sample is None or key != sample.key:
                    if sample is not None:
                        yield sample
                    n_samples += 1
                    if n_samples > MAX_SAMPLES_PER_SHARD:
                        sample = Sample(url, key, problems=[(member, f"shard holds more than {MAX_SAMPLES_PER_SHARD:,} "
                                                                     "samples; the rest was not read: split it")])
                        break
                    sample = Sample(url, key)
                ext = ext.lower()
                if not (_is_image(ext) or ext in ("json", "txt")):
                    continue
                if _is_image(ext) and not images:
                    sample.members[ext] = b""  # named, not read
                    continue
                limit = max_member_bytes if _is_image(ext) else MAX_META_BYTES
                if info.size > limit:
                    sample.problems.append((member, f"member of {info.size:,} bytes exceeds the {limit:,}-byte limit; "
                                                    "re-export it smaller or raise --max-member-mb"))
                    continue
                sample.members[ext] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        sample = sample or Sample(url, "")
        sample.problems.append((member, f"truncated or corrupt shard ({_short(exc)}); the rest of {url} was not "
                                        "read: re-download or rewrite the shard"))
    if sample is not None:
        yield sample


def _is_image(ext: str) -> bool:
    return ext.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS


def sample_row(sample: Sample, fmt: str = "pigeon") -> Row:
    """Manifest fields and image members of a sample (the one rule for reading a shard's rows)."""
    problems = list(sample.problems)
    meta: dict[str, Any] = {}
    if "json" in sample.members:
        try:
            meta = json.loads(sample.members["json"])
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append((f"{sample.key}.json", f"unreadable metadata ({_short(exc)})"))
            meta = {}
    elif "txt" in sample.members:
        meta = _coordinates_text(sample.members["txt"])
    fields = _manifest_fields(meta, fmt)
    fields["id"] = str(fields.get("id", sample.key.rsplit("/", 1)[-1]))
    views = sorted(((k, v) for k, v in sample.members.items() if _is_image(k)), key=lambda kv: _view_order(kv[0]))
    return Row(fields, [(f"{sample.key}.{ext}", data) for ext, data in views], problems)


def _manifest_fields(meta: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Scalar json fields under manifest names (lat / lon from their usual aliases)."""
    fields = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) or v is None}
    for name, aliases in (("lat", _LAT), ("lon", _LON)):
        found = next((fields.pop(a) for a in aliases if a in fields), None)
        fields[name] = _number(found)
    if fmt == "osv5m-wds":
        kept = {target: fields[source] for source, target in _OSV5M_KEEP if source in fields}
        fields = {k: fields[k] for k in ("id", "lat", "lon", "split") if k in fields} | kept
    return fields


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _coordinates_text(data: bytes) -> dict[str, float]:
    """``lat,lon`` (or ``lat lon``) from a txt member; a caption or anything else gives no coordinates."""
    parts = re.split(r"[,\s]+", data.decode("utf-8", "replace").strip())
    if len(parts) == 2 and all(re.fullmatch(r"[-+]?\d+(\.\d*)?", p) for p in parts):
        return {"lat": float(parts[0]), "lon": float(parts[1])}
    return {}


def _view_order(ext: str) -> tuple[int, str]:
    head = ext.split(".", 1)[0]
    return (int(head), ext) if head.isdigit() else (-1, ext)


def import_shards(spec: str | os.PathLike | Sequence[str], fmt: str = "pigeon", split: str | None = None
                  ) -> pd.DataFrame:
    """A manifest of the samples of some shards, from their metadata members only (images are skipped).

    ``image`` is ``"<shard url>#<member>"`` (one per view), so the rows say where their pixels are; ``pigeon embed``
    reads the shards themselves. ``split``: the split of rows without one (default: the shard's folder name when it
    is train / val / test, as in OSV-5M's ``train/0000.tar``).
    """
    from pigeon.data.manifest import SPLITS, validate_manifest

    if fmt not in SHARD_FORMATS:
        raise InputError(f"unknown shard format {fmt!r}; use one of {', '.join(SHARD_FORMATS)}")
    rows = []
    for url in expand_shards(spec):
        folder = url.rstrip("/").rsplit("/", 2)[-2] if "/" in url else ""
        default_split = split or (folder if folder in SPLITS else None)
        for sample in iter_shard(url, images=False):
            row = sample_row(sample, fmt)
            if row.views:
                images = [f"{url}#{name}" for name, _ in row.views]
                rows.append({**row.fields, "image": images[0] if len(images) == 1 else images,
                             "split": row.fields.get("split") or default_split})
    if not rows:
        raise InputError(f"{spec}: the shards hold no sample")
    df = pd.DataFrame(rows)
    if df["split"].isna().all():
        df = df.drop(columns="split")
    return validate_manifest(df, where=str(spec))


# --- writing shards ------------------------------------------------------------------------------------------

@dataclass
class ShardsResult:
    """What :func:`write_shards` wrote."""

    out_dir: Path
    pattern: str
    n_shards: int
    n_rows: int
    failed: pd.DataFrame


def write_shards(df: pd.DataFrame, out_dir: str | os.PathLike, size: int = 10_000, resize: int | None = None,
                 max_member_bytes: int = MAX_MEMBER_BYTES, overwrite: bool = False) -> ShardsResult:
    """Write a manifest's images and metadata as WebDataset shards of ``size`` rows, with an index.

    Args:
        df: a manifest (``df.attrs["root"]`` resolves relative image paths).
        out_dir: the shards folder (created; a rerun with the same settings keeps the finished shards).
        size: rows per shard.
        resize: shortest edge of pre-resized JPEG views (decoded through :mod:`pigeon.images`); None: the original
            files' bytes.
        max_member_bytes: larger image files are listed as failures, not copied.
        overwrite: replace a folder written with other settings.
    """
    from pigeon._progress import track
    from pigeon.data.manifest import image_views, manifest_sha256, validate_manifest

    if size < 1 or (resize is not None and resize < 8):
        raise InputError(f"--size must be >= 1 and --resize >= 8, got {size} and {resize}")
    if "://" in str(out_dir):
        raise InputError(f"{out_dir}: shards are written to a local folder (atomically); copy them up afterwards")
    root = df.attrs.get("root", ".")
    df = validate_manifest(df, require_coords=False)
    out = Path(out_dir)
    n_shards = math.ceil(len(df) / size)
    config = {"manifest_sha256": manifest_sha256(df), "n_rows": len(df), "size": size, "resize": resize,
              "max_member_bytes": max_member_bytes, "n_shards": n_shards}
    if _prepare_folder(out, config, overwrite):
        return read_shards_result(out)
    views = image_views(df, root)
    records = df.drop(columns="image").to_dict("records")
    index, failed = [], []
    for k in track(range(n_shards), f"writing {n_shards} shard(s)"):
        rows = range(k * size, min(len(df), (k + 1) * size))
        path = out / SHARD_NAME.format(k)
        shard_index, shard_failed = _write_shard(path, rows, records, views, resize, max_member_bytes)
        index += shard_index
        failed += shard_failed
    return _finish_folder(out, config, index, failed, n_shards)


def _prepare_folder(out: Path, config: dict[str, Any], overwrite: bool) -> bool:
    """Check or clear the output folder; True when it already holds these shards, complete."""
    if (out / META).is_file():
        meta = read_json(out / META)
        if meta.get("config") == config and meta.get("complete"):
            return True
        if meta.get("config") != config and not overwrite:
            raise InputError(f"{out} holds shards written with other settings; pass another folder or --overwrite")
        for path in out.glob("shard-*.tar"):
            path.unlink()
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not a shards folder; pass an empty or new output folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / META, {**provenance("shards", config), "complete": False})
    return False


def _write_shard(path: Path, rows: range, records: list[dict], views: list[list[Path]], resize: int | None,
                 max_member_bytes: int) -> tuple[list[dict], list[list]]:
    """One shard, written atomically; returns its index rows and its failures."""
    import webdataset as wds

    index, failed = [], []
    with atomic_path(path) as tmp:
        writer = wds.TarWriter(str(tmp))
        for r in rows:
            key = f"{r:09d}"
            sample = {"__key__": key, "json": json.dumps(records[r], default=_json_scalar).encode()}
            for v, image in enumerate(views[r]):
                data, ext, error = _image_member(image, resize, max_member_bytes)
                if error:
                    failed.append([records[r]["id"], v, str(image), error])
                else:
                    sample[f"{v}.{ext}" if len(views[r]) > 1 else ext] = data
            n_views = len(sample) - 2
            if n_views:
                writer.write(sample)
                index.append({**records[r], "shard": path.name, "key": key, "n_views": n_views})
        writer.close()
    return index, failed


def _image_member(path: Path, resize: int | None, max_bytes: int) -> tuple[bytes | None, str, str]:
    """``(bytes, extension, "")`` of one view, or ``(None, "", error)``."""
    from pigeon.images import load_image

    try:
        n = path.stat().st_size
        if n > max_bytes:
            return None, "", f"file of {n:,} bytes exceeds the {max_bytes:,}-byte member limit"
        if resize is None:
            ext = path.suffix.lower().lstrip(".").replace("jpeg", "jpg")
            return path.read_bytes(), ext if ext in IMAGE_EXTENSIONS else "jpg", ""
        img = load_image(path)
        scale = resize / min(img.size)
        if scale < 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), 3)  # bicubic
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        return buf.getvalue(), "jpg", ""
    except PigeonError as exc:
        return None, "", str(exc)
    except OSError as exc:
        return None, "", f"{path}: cannot read ({_short(exc)}); fix the path or drop the row"


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _finish_folder(out: Path, config: dict[str, Any], index: list[dict], failed: list[list], n_shards: int
                   ) -> ShardsResult:
    index_df = pd.DataFrame(index)
    failed_df = pd.DataFrame(failed, columns=FAILED_COLUMNS)
    with atomic_path(out / INDEX) as tmp:
        index_df.to_parquet(tmp, index=False)
    with atomic_path(out / FAILED) as tmp:
        failed_df.to_csv(tmp, index=False)
    pattern = f"shard-{{000000..{n_shards - 1:06d}}}.tar"
    write_json(out / META, {**provenance("shards", config), "complete": True, "pattern": pattern,
                            "n_samples": len(index_df), "n_failed_images": len(failed_df)})
    return read_shards_result(out)


def read_shards_result(out: str | os.PathLike) -> ShardsResult:
    """The :class:`ShardsResult` of a complete folder written by :func:`write_shards`."""
    out = Path(out)
    meta = read_json(out / META, hint=f"write it with 'pigeon data shard MANIFEST -o {out}'")
    if meta.get("kind") != "shards" or not meta.get("complete"):
        raise InputError(f"{out} is not a complete shards folder; rerun 'pigeon data shard'")
    failed = pd.read_csv(out / FAILED, dtype={"id": str})
    return ShardsResult(out, str(out / meta["pattern"]), meta["config"]["n_shards"], meta["n_samples"], failed)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
