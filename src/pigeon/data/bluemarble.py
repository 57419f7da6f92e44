"""Blue Marble: a small, real geolocation task cut from NASA's Blue Marble mosaic.

The vendored images (``pigeon/resources/bluemarble/``, public domain, see its ``ATTRIBUTION``) are
equirectangular: pixel column ``x = (lon + 180) / 360 * W`` and row ``y = (90 - lat) / 180 * H``, pixel
centres at ``+ 0.5``; the 4096 x 2048 true-colour mosaic has about 9.8 km per pixel.

A location is drawn on land, either uniformly over the land area or weighted by the city lights of the
night image (where people live). Each view is a square patch of a fixed ground extent in an azimuthal
equidistant projection about its centre, so the patch covers the same number of km at every latitude (no
longitude stretch), rotated so that the view's compass heading points up. With several views, view ``k``
looks toward ``heading + k * 360 / views`` and is centred ``view_offset_km`` ahead of the point (a
panorama's analogue); each view centre also gets a small random jitter of up to ``jitter_km``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pigeon._io import atomic_path, provenance, write_json
from pigeon._progress import track
from pigeon.data.manifest import write_manifest
from pigeon.data._config import VIEW_COUNTS, BlueMarbleConfig, SplitConfig  # noqa: F401
from pigeon.data.split import split_manifest
from pigeon.errors import InputError
from pigeon.geo import destination_point

__all__ = [
    "MANIFEST_NAME", "SOURCE_FILES", "VIEW_COUNTS", "blue_marble", "extract_patch", "make_bluemarble_dataset",
    "on_land", "sample_locations",
]

#: The vendored source images, by role.
SOURCE_FILES = {"day": "earth-blue-marble.jpg", "night": "earth-night.jpg", "water": "earth-water.png"}
#: File name of the manifest written into the dataset folder.
MANIFEST_NAME = "manifest.parquet"
_LIGHTS_FLOOR = 20  # red channel of earth-night.jpg: unlit (moonlit) ground stays below this
_MAX_DRAWS = 200  # rejection-sampling rounds before giving up on a latitude band


def _resource(name: str) -> Path:
    return Path(str(resources.files("pigeon") / "resources" / "bluemarble" / name))


def _read_source(role: str) -> np.ndarray:
    with Image.open(_resource(SOURCE_FILES[role])) as img:
        array = np.asarray(img.convert("RGB" if role != "water" else "L"))
    array.flags.writeable = False
    return array


@functools.cache
def blue_marble() -> np.ndarray:
    """The true-colour Blue Marble mosaic: read-only uint8 (2048, 4096, 3), equirectangular."""
    return _read_source("day")


@functools.cache
def _land_mask() -> np.ndarray:
    return _read_source("water") < 128


def _pixel_index(lat: np.ndarray, lon: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the equirectangular pixel that contains each (lat, lon)."""
    h, w = shape[:2]
    row = np.clip(np.floor((90.0 - lat) / 180.0 * h), 0, h - 1).astype(np.int64)
    col = np.floor((np.asarray(lon) + 180.0) / 360.0 * w).astype(np.int64) % w
    return row, col


def on_land(lat, lon) -> np.ndarray:
    """True where the Blue Marble water mask (1600 x 800, ~25 km pixels) shows land; rivers count as water.

    Args:
        lat, lon: degrees, any broadcastable shapes.

    Returns:
        bool array of the broadcast shape.
    """
    lat, lon = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    mask = _land_mask()
    return mask[_pixel_index(lat, lon, mask.shape)]


@functools.cache
def _lit_pixels() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Lit land pixels of the night image: row, col, weight (light above the floor x pixel area), image shape."""
    red = _read_source("night")[..., 0].astype(np.float64)
    h, w = red.shape
    lat = 90.0 - (np.arange(h) + 0.5) / h * 180.0
    lon = (np.arange(w) + 0.5) / w * 360.0 - 180.0
    weight = np.clip(red - _LIGHTS_FLOOR, 0, None) * np.cos(np.radians(lat))[:, None]
    weight *= on_land(lat[:, None], lon[None, :])
    row, col = np.nonzero(weight)
    return row, col, weight[row, col], (h, w)


def _rejection_sample(n: int, draw: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]], factor: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Call ``draw(size) -> (lat, lon, keep)`` until ``n`` points are kept; None if it keeps too few."""
    lats, lons, have = [], [], 0
    for _ in range(_MAX_DRAWS):
        if have >= n:
            break
        lat, lon, keep = draw(max(64, factor * (n - have)))
        lats.append(lat[keep])
        lons.append(lon[keep])
        have += int(keep.sum())
    if have < n:
        return None
    return np.concatenate(lats)[:n], np.concatenate(lons)[:n]


def _draw_uniform(n: int, lat_range: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform over the land area between the latitudes (rejection sampling on the sphere)."""
    z_lo, z_hi = np.sin(np.radians(lat_range))

    def draw(size: int):
        lat = np.degrees(np.arcsin(rng.uniform(z_lo, z_hi, size)))
        lon = rng.uniform(-180.0, 180.0, size)
        return lat, lon, on_land(lat, lon)

    points = _rejection_sample(n, draw, factor=4)
    if points is None:
        raise InputError(f"found no land between latitudes {lat_range[0]:g} and {lat_range[1]:g}; "
                         "widen lat_range (--south/--north)")
    return points


def _draw_populated(n: int, lat_range: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` land points drawn with probability proportional to the city lights (night image)."""
    row, col, weight, (h, w) = _lit_pixels()
    lat_px = 90.0 - (row + 0.5) / h * 180.0
    inside = (lat_px >= lat_range[0]) & (lat_px <= lat_range[1])
    if not inside.any():
        raise InputError(f"no city lights between latitudes {lat_range[0]:g} and {lat_range[1]:g}; "
                         "widen lat_range (--south/--north) or set populated_fraction=0 (--populated 0)")
    row, col = row[inside], col[inside]
    cdf = np.cumsum(weight[inside])

    def draw(size: int):
        pick = np.minimum(np.searchsorted(cdf, rng.uniform(0.0, cdf[-1], size), side="right"), cdf.size - 1)
        lat = 90.0 - (row[pick] + rng.random(size)) / h * 180.0  # a uniform point inside the chosen pixel
        lon = (col[pick] + rng.random(size)) / w * 360.0 - 180.0
        return lat, lon, on_land(lat, lon) & (lat >= lat_range[0]) & (lat <= lat_range[1])

    points = _rejection_sample(n, draw, factor=2)
    if points is None:
        raise InputError(f"too little lit land between latitudes {lat_range[0]:g} and {lat_range[1]:g}; "
                         "widen lat_range (--south/--north) or set populated_fraction=0 (--populated 0)")
    return points


def sample_locations(
    n: int,
    seed: int | np.random.Generator = 0,
    *,
    populated_fraction: float = 0.5,
    lat_range: tuple[float, float] = (-60.0, 80.0),
) -> pd.DataFrame:
    """Random locations on land: a share uniform over the land area, the rest weighted by city lights.

    Args:
        n: number of locations.
        seed: random seed or generator.
        populated_fraction: share of locations drawn in proportion to the night lights (0 = all uniform).
        lat_range: (south, north) latitude limits in degrees.

    Returns:
        DataFrame with ``n`` rows, in random order: ``lat``, ``lon`` (degrees) and ``sampling``
        (``"populated"`` or ``"land"``).
    """
    rng = np.random.default_rng(seed)
    n_populated = round(n * populated_fraction)
    lat_p, lon_p = _draw_populated(n_populated, lat_range, rng) if n_populated else (np.empty(0), np.empty(0))
    lat_u, lon_u = _draw_uniform(n - n_populated, lat_range, rng) if n > n_populated else (np.empty(0), np.empty(0))
    order = rng.permutation(n)
    return pd.DataFrame({
        "lat": np.concatenate([lat_p, lat_u])[order],
        "lon": np.concatenate([lon_p, lon_u])[order],
        "sampling": np.repeat(np.array(["populated", "land"], dtype=object), [n_populated, n - n_populated])[order],
    })


@functools.cache
def _patch_polar(size_px: int, patch_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance (km) and bearing offset (degrees clockwise from 'up') of each output pixel centre."""
    step = patch_km / size_px
    offsets = (np.arange(size_px) + 0.5 - size_px / 2) * step
    right, up = np.meshgrid(offsets, -offsets)  # row 0 is the top of the image
    return np.hypot(right, up), np.degrees(np.arctan2(right, up))


def _bilinear(image: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear samples of an equirectangular image at (lat, lon); wraps in longitude, clamps at the poles."""
    h, w = image.shape[:2]
    x = (lon + 180.0) / 360.0 * w - 0.5
    y = (90.0 - lat) / 180.0 * h - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    c0, c1 = x0 % w, (x0 + 1) % w
    r0, r1 = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = image[r0, c0] * (1 - fx) + image[r0, c1] * fx
    bottom = image[r1, c0] * (1 - fx) + image[r1, c1] * fx
    return top * (1 - fy) + bottom * fy


def extract_patch(
    lat: float,
    lon: float,
    heading: float = 0.0,
    *,
    size_px: int = 128,
    patch_km: float = 640.0,
    image: np.ndarray | None = None,
) -> np.ndarray:
    """A square view of the ground centred on (lat, lon), with compass ``heading`` pointing up.

    The patch is an azimuthal equidistant projection about its centre, bilinearly resampled, so each side
    spans ``patch_km`` at any latitude. With ``heading=0`` north is up and east is right; with ``heading=90``
    east is up.

    Args:
        lat, lon: centre in degrees.
        heading: compass direction (degrees clockwise from north) that points to the top of the patch.
        size_px: side of the patch in pixels.
        patch_km: side of the patch in km.
        image: equirectangular source (H, W, C) or (H, W); default :func:`blue_marble`.

    Returns:
        uint8 array (size_px, size_px, C), or (size_px, size_px) for a 2-D ``image``.
    """
    image = blue_marble() if image is None else image
    distance, bearing = _patch_polar(int(size_px), float(patch_km))
    plat, plon = destination_point(lat, lon, heading + bearing, distance)
    values = _bilinear(image if image.ndim == 3 else image[..., None], plat, plon)
    out = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out if image.ndim == 3 else out[..., 0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_jpeg(array: np.ndarray, path: Path, quality: int) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="JPEG", quality=quality)


def make_bluemarble_dataset(out_dir: str | os.PathLike, config: BlueMarbleConfig | None = None, *,
                            split: SplitConfig | Sequence[float] | None = None, overwrite: bool = False,
                            **options) -> pd.DataFrame:
    """Generate the Blue Marble geolocation dataset: JPEG views and a manifest with splits.

    Writes ``out_dir/images/<id>_<k>.jpg`` (view ``k``), ``out_dir/manifest.parquet`` and ``out_dir/meta.json``.
    The same arguments give byte-identical images and manifest.

    >>> make_bluemarble_dataset("bm/", n=1000, views=4, seed=0)      # or make_bluemarble_dataset("bm/", config)

    Args:
        out_dir: output folder (created).
        config: a :class:`~pigeon.data.BlueMarbleConfig` (locations, views, their size and ground extent...).
        split: a :class:`~pigeon.data.SplitConfig` (e.g. ``SplitConfig(by="region", buffer_km=905)``), or
            (train, val, test) fractions of a random split seeded with the config's seed; default its defaults.
        overwrite: replace a dataset already in ``out_dir``.
        options: fields of :class:`~pigeon.data.BlueMarbleConfig` over ``config`` (None keeps its value).

    Returns:
        The manifest: ``id``, ``image`` (str, or list of str for several views, relative to ``out_dir``),
        ``lat``, ``lon``, ``heading`` (degrees clockwise from north of the first view), ``view_lat`` and
        ``view_lon`` (the centre of each view, degrees), ``split`` (empty for rows a split buffer left out) and
        ``sampling`` (``"populated"`` or ``"land"``); ``attrs["root"]`` is ``out_dir``, ``attrs["meta"]`` the
        split configuration.
    """
    cfg = (config or BlueMarbleConfig()).with_options(**options).validate()
    split = SplitConfig.of(split if split is not None else SplitConfig(seed=cfg.seed), cfg.seed).validate()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file; pass a folder for the dataset")
    if (out_dir / MANIFEST_NAME).exists() and not overwrite:
        raise InputError(f"{out_dir} already holds a dataset; pass overwrite=True (--overwrite) or another folder")
    manifest, headings, centres = _locations(cfg)
    manifest = split_manifest(manifest, split)  # before the images: a split that cannot be made fails fast
    _write_views(out_dir, manifest, headings, centres, cfg, overwrite)
    write_manifest(manifest, out_dir / MANIFEST_NAME)
    record = {**cfg.to_dict(), "view_offset_km": cfg.offset_km, "split": split.to_dict(),
              "sources": {name: _sha256(_resource(name)) for name in SOURCE_FILES.values()}}
    meta = provenance("bluemarble", record)
    meta["counts"] = manifest.attrs["meta"]["split"]["counts"]
    write_json(out_dir / "meta.json", meta)
    manifest.attrs["root"] = str(out_dir.resolve())
    return manifest


def _locations(cfg: BlueMarbleConfig) -> tuple[pd.DataFrame, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The manifest of ``cfg.n`` random land locations (no split yet), each view's heading ``(n, views)`` and
    centre (lat, lon), all drawn from one seeded stream."""
    n, views = cfg.n, cfg.views
    rng = np.random.default_rng(cfg.seed)
    df = sample_locations(n, rng, populated_fraction=cfg.populated_fraction, lat_range=cfg.lat_range)
    heading = rng.uniform(0.0, 360.0, n) if cfg.rotate else np.zeros(n)
    view_heading = (heading[:, None] + np.arange(views) * 360.0 / views) % 360.0
    jitter_bearing = rng.uniform(0.0, 360.0, (n, views))
    jitter_dist = cfg.jitter_km * np.sqrt(rng.random((n, views)))  # uniform over a disc
    centre_lat, centre_lon = destination_point(df["lat"].to_numpy()[:, None], df["lon"].to_numpy()[:, None],
                                               view_heading, cfg.offset_km)
    centre_lat, centre_lon = destination_point(centre_lat, centre_lon, jitter_bearing, jitter_dist)
    width = max(5, len(str(n - 1)))
    ids = [f"bm{i:0{width}d}" for i in range(n)]
    images = [[f"images/{id_}_{k}.jpg" for k in range(views)] for id_ in ids]
    manifest = pd.DataFrame({
        "id": ids,
        "image": images if views > 1 else [row[0] for row in images],
        "lat": df["lat"].to_numpy(),
        "lon": df["lon"].to_numpy(),
        "heading": heading,
        "view_lat": [row.tolist() for row in centre_lat],
        "view_lon": [row.tolist() for row in centre_lon],
        "split": None,
        "sampling": df["sampling"].to_numpy(),
    })
    return manifest, view_heading, (centre_lat, centre_lon)


def _write_views(out_dir: Path, manifest: pd.DataFrame, headings: np.ndarray,
                 centres: tuple[np.ndarray, np.ndarray], cfg: BlueMarbleConfig, overwrite: bool) -> None:
    """Cut and write every view (JPEG, atomically); with ``overwrite``, delete the views of an earlier dataset."""
    centre_lat, centre_lon = centres
    images = [v if isinstance(v, list) else [v] for v in manifest["image"]]
    source = blue_marble()
    for i in track(range(cfg.n), "bluemarble views"):
        for k in range(cfg.views):
            patch = extract_patch(centre_lat[i, k], centre_lon[i, k], headings[i, k], size_px=cfg.size_px,
                                  patch_km=cfg.patch_km, image=source)
            _write_jpeg(patch, out_dir / images[i][k], cfg.quality)
    if overwrite:
        keep = {name for row in images for name in row}
        for old in (out_dir / "images").glob("bm*.jpg"):
            if f"images/{old.name}" not in keep:
                old.unlink()
