"""Settings of the data stage that the CLI shows in its help: splits and the Blue Marble dataset (no pandas here)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from pigeon._config import JsonConfig
from pigeon.errors import InputError, UnknownNameError

#: The values of a manifest's ``split`` column.
SPLITS = ("train", "val", "test")
#: The ``by`` choices of :func:`pigeon.data.split_manifest`.
SPLIT_METHODS = ("random", "region", "cell")
#: Regions (or on-the-fly cells) when ``n_regions`` is not given.
DEFAULT_REGIONS = 50


@dataclass(frozen=True)
class SplitConfig(JsonConfig):
    """How to split a manifest (``split_manifest(df, config)``); see :func:`pigeon.data.split_manifest` for the
    meaning of each field."""

    by: str = "random"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    buffer_km: float = 0.0
    seed: int = 0
    n_regions: int | None = None
    cells: str | None = None  # a geocells folder, for by="cell"

    @classmethod
    def of(cls, split: SplitConfig | Sequence[float], seed: int = 0) -> SplitConfig:
        """``split`` itself, or a random split with these (train, val, test) fractions and ``seed``."""
        return split if isinstance(split, SplitConfig) else cls(fractions=tuple(float(v) for v in split), seed=seed)

    def validate(self) -> SplitConfig:
        """Check the fields before any work starts; raise an error naming the option to fix."""
        if self.by not in SPLIT_METHODS:
            raise UnknownNameError("split method", self.by, SPLIT_METHODS, hint="use --by random|region|cell")
        if not _valid_fractions(self.fractions):
            raise InputError(f"split fractions {tuple(self.fractions)}: give three non-negative train,val,test "
                             "fractions that sum to 1 (--fractions 0.8,0.1,0.1)")
        if not (math.isfinite(self.buffer_km) and self.buffer_km >= 0):
            raise InputError(f"buffer_km={self.buffer_km!r}: give a distance in km >= 0 (--buffer-km)")
        if self.n_regions is not None and self.n_regions < 1:
            raise InputError(f"n_regions={self.n_regions!r}: give at least 1 region (--regions)")
        if self.cells is not None and self.by != "cell":
            raise InputError(f"cells are only used by the cell split, not by={self.by!r}; pass --by cell")
        return self


def parse_split(text: str, option: str = "--fractions") -> tuple[float, float, float]:
    """Parse ``"0.8,0.1,0.1"`` into (train, val, test) fractions that sum to 1."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if not _valid_fractions(parts):
        raise InputError(f"{option} {text!r}: give three non-negative train,val,test fractions that sum to 1, "
                         "e.g. 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


def _valid_fractions(parts: Sequence[float]) -> bool:
    return (len(parts) == len(SPLITS) and all(math.isfinite(p) and p >= 0 for p in parts)
            and abs(sum(parts) - 1.0) <= 1e-6)


#: Allowed numbers of views per Blue Marble location.
VIEW_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class BlueMarbleConfig(JsonConfig):
    """How :func:`pigeon.data.make_bluemarble_dataset` cuts its views (recorded in the dataset's ``meta.json``).

    Attributes:
        n: number of locations.
        views: views per location, one of :data:`VIEW_COUNTS`; several views form the ``image`` list.
        seed: random seed of locations, headings, jitter and (by default) the split.
        size_px: side of each view in pixels.
        patch_km: ground extent of each view's side in km.
        jitter_km: each view centre is moved a random distance up to this (km) in a random direction.
        view_offset_km: distance from the location to each view centre, toward the view's heading; None: 0 for
            one view and ``patch_km / 2`` for several (:attr:`offset_km`).
        rotate: draw a random heading per location; if False every location has heading 0 (north up).
        populated_fraction: share of locations weighted by city lights; the rest are uniform over land.
        lat_range: (south, north) latitude limits in degrees; the default leaves out Antarctica.
        quality: JPEG quality.
    """

    n: int = 1000
    views: int = 4
    seed: int = 0
    size_px: int = 128
    patch_km: float = 640.0
    jitter_km: float = 20.0
    view_offset_km: float | None = None
    rotate: bool = True
    populated_fraction: float = 0.5
    lat_range: tuple[float, float] = (-60.0, 80.0)
    quality: int = 90

    @property
    def offset_km(self) -> float:
        """The distance of each view centre from its location, km."""
        if self.view_offset_km is not None:
            return self.view_offset_km
        return 0.0 if self.views == 1 else self.patch_km / 2

    def validate(self) -> BlueMarbleConfig:
        """A checked copy (floats as floats); a one-line :class:`InputError` for the first bad parameter."""
        def bad(name: str, rule: str) -> InputError:
            return InputError(f"bluemarble {name}={getattr(self, name)!r}: {rule}")

        if not _is_int(self.n) or self.n < 1:
            raise bad("n", "give a positive number of locations, e.g. 1000")
        if self.views not in VIEW_COUNTS:
            raise bad("views", f"the number of views must be one of {', '.join(map(str, VIEW_COUNTS))}")
        if not _is_int(self.size_px) or not 8 <= self.size_px <= 2048:
            raise bad("size_px", "give a patch side between 8 and 2048 pixels")
        if not (math.isfinite(self.patch_km) and 0 < self.patch_km <= 5000):
            raise bad("patch_km", "give a patch side in km in (0, 5000]")
        if not (math.isfinite(self.jitter_km) and 0 <= self.jitter_km <= self.patch_km):
            raise bad("jitter_km", "give a jitter in km between 0 and patch_km")
        offset = self.view_offset_km
        if offset is not None and not (math.isfinite(offset) and 0 <= offset <= 5000):
            raise bad("view_offset_km", "give an offset in km between 0 and 5000 (or leave it unset)")
        if not (math.isfinite(self.populated_fraction) and 0 <= self.populated_fraction <= 1):
            raise bad("populated_fraction", "give a fraction between 0 and 1")
        lat_range = tuple(float(v) for v in self.lat_range)
        if len(lat_range) != 2 or not (-90 <= lat_range[0] < lat_range[1] <= 90):
            raise InputError(f"bluemarble lat_range={lat_range!r}: give (south, north) with -90 <= south < north <= 90")
        if not _is_int(self.quality) or not 1 <= self.quality <= 95:
            raise bad("quality", "give a JPEG quality between 1 and 95")
        return self.replace(patch_km=float(self.patch_km), jitter_km=float(self.jitter_km),
                            populated_fraction=float(self.populated_fraction),
                            lat_range=lat_range)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
