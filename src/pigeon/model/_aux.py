"""Targets of the auxiliary heads (climate, month, geodata regression) and their standardiser.

PIGEON trains, beside the geocell head, linear heads on the same embedding for the Köppen-Geiger class,
the month and six regression targets. The regression targets get the reference's transform: add an offset,
take ``log`` (all but mean temperature), then standardise with a mean and std saved as JSON.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pigeon._device import all_reduce_counts, distributed_info
from pigeon._io import read_json, write_json
from pigeon.errors import InputError

#: Regression columns in the reference's order, with (offset, log) of its transform.
REGRESSION_TRANSFORMS: dict[str, tuple[float, bool]] = {
    "elevation_m": (408.0, True),
    "pop_density": (1.0, True),
    "temp_mean_c": (0.0, False),
    "temp_range_c": (1.0, True),
    "precip_mm": (1.0, True),
    "precip_range_mm": (1.0, True),
}
#: The physical range of each regression column, the Earth's extremes with some margin: predictions are clipped into
#: it (and into the training range) by :meth:`Standardiser.bounds`; densities, ranges and precipitation are never
#: negative.
VALID_RANGES: dict[str, tuple[float, float]] = {
    "elevation_m": (-450.0, 8849.0),          # the Dead Sea shore to Everest
    "pop_density": (0.0, 100_000.0),          # the densest city districts are near 70,000 people/km²
    "temp_mean_c": (-60.0, 40.0),             # yearly means: the East Antarctic plateau to Dallol
    "temp_range_c": (0.0, 70.0),              # warmest minus coldest month: Verkhoyansk's is about 65 °C
    "precip_mm": (0.0, 1_500.0),              # monthly mean of the year: Mawsynram's is about 1,000 mm
    "precip_range_mm": (0.0, 4_000.0),        # wettest minus driest month: Cherrapunji's is about 2,700 mm
}
#: How a person reads each regression column: label, unit, decimals (the CLI and the page both use it).
AUX_LABELS: dict[str, tuple[str, str, int]] = {
    "elevation_m": ("elevation", "m", 0),
    "pop_density": ("population density", "people/km²", 0),
    "temp_mean_c": ("mean temperature", "°C", 0),
    "temp_range_c": ("yearly temperature range", "°C", 0),
    "precip_mm": ("precipitation", "mm/month", 0),
    "precip_range_mm": ("precipitation range", "mm/month", 0),
}
N_MONTHS = 12
#: Smallest value ``log`` is applied to (after the offset), so e.g. the Dead Sea shore stays finite.
_LOG_FLOOR = 1e-3
_LOG_CEILING = 80.0  # exp() of a wild untrained output stays finite (e^80 ~ 5e34)


def aux_text(name: str, value: Any) -> str:
    """One auxiliary prediction as a person reads it: "climate Cfb, temperate oceanic (62%)", "elevation 212 m"."""
    if name == "climate":
        label = f"{value['class']}, {value['name']}" if value.get("name") else value["class"]
        return f"climate {label} ({100 * value['prob']:.0f}%)"
    if name == "month":
        return f"month {value['month']} ({100 * value['prob']:.0f}%)"
    label, unit, decimals = AUX_LABELS.get(name, (name.replace("_", " "), "", 1))
    return f"{label} {value:,.{decimals}f} {unit}".rstrip()


def koppen_classes() -> tuple[str, ...]:
    """The canonical Köppen-Geiger class table (:data:`pigeon.koppen.KOPPEN_CLASSES` order)."""
    from pigeon.koppen import KOPPEN_CLASSES

    return tuple(KOPPEN_CLASSES)


@dataclass
class AuxTargets:
    """Auxiliary labels for N samples; a missing label is -1 (classes) or NaN (regression).

    Attributes:
        climate: (N,) int64 index into ``climate_classes``, or None when the data has no ``koppen`` column.
        climate_classes: class names of the climate head.
        month: (N,) int64 month index 0..11, or None.
        regression: (N, R) float64 raw values in the columns' units, or None.
        regression_columns: names of the R regression columns.
    """

    climate: np.ndarray | None = None
    climate_classes: tuple[str, ...] = ()
    month: np.ndarray | None = None
    regression: np.ndarray | None = None
    regression_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return sum(v is not None for v in (self.climate, self.month, self.regression))

    def subset(self, rows: np.ndarray) -> AuxTargets:
        """The targets of ``rows`` (an index array or boolean mask)."""
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return AuxTargets(pick(self.climate), self.climate_classes, pick(self.month), pick(self.regression),
                          self.regression_columns)


def aux_targets(df: pd.DataFrame) -> AuxTargets:
    """Auxiliary labels from the columns a manifest has (``koppen``, ``month`` or ``taken_at``, geodata).

    A head is only made for a column with at least one known value; unknown Köppen codes become -1.
    """
    out = AuxTargets()
    if "koppen" in df.columns and df["koppen"].notna().any():
        classes = koppen_classes()
        lookup = {c: i for i, c in enumerate(classes)}
        out.climate = np.array([lookup.get(v, -1) if isinstance(v, str) else -1 for v in df["koppen"]], np.int64)
        out.climate_classes = classes if (out.climate >= 0).any() else ()
        out.climate = out.climate if out.climate_classes else None
    months = _months(df)
    if months is not None and (months >= 0).any():
        out.month = months
    columns = [c for c in REGRESSION_TRANSFORMS
               if c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any()]
    if columns:
        out.regression = np.column_stack([pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64) for c in columns])
        out.regression_columns = tuple(columns)
    return out


def _months(df: pd.DataFrame) -> np.ndarray | None:
    """Month index 0..11 (-1 unknown) from a ``month`` column (1..12) or a ``taken_at`` timestamp."""
    if "month" in df.columns:
        m = pd.to_numeric(df["month"], errors="coerce").to_numpy(np.float64)
    elif "taken_at" in df.columns:
        m = pd.to_datetime(df["taken_at"], errors="coerce", utc=True).dt.month.to_numpy(np.float64)
    else:
        return None
    ok = np.isfinite(m) & (m >= 1) & (m <= N_MONTHS)
    return np.where(ok, np.nan_to_num(m) - 1, -1).astype(np.int64)


def aux_tensors(aux: AuxTargets, standardiser: Standardiser | None = None) -> dict[str, torch.Tensor]:
    """The targets as tensors: class indices (int64, -1 unknown), regression standardised (float32, NaN unknown)."""
    out = {}
    if aux.climate is not None:
        out["climate"] = torch.from_numpy(aux.climate)
    if aux.month is not None:
        out["month"] = torch.from_numpy(aux.month)
    if aux.regression is not None and standardiser is not None:
        out["regression"] = torch.from_numpy(standardiser.transform(aux.regression)).float()
    return out


def aux_loss(out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
             weights: dict[str, float]) -> torch.Tensor:
    """Weighted sum of the auxiliary losses present in both ``out`` and ``targets`` (zero when none are).

    Climate and month are cross-entropy over class indices, regression the MSE of standardised values; unknown
    labels (-1, NaN) are left out. ``weights`` maps ``climate``, ``month``, ``regression`` to their weights
    (the paper's 2, 1, 8). Under torchrun each loss is a mean over the known labels of all processes' shares of the
    batch (their counts are summed over processes), so that the averaged gradients are the single-process ones.
    """
    loss = next(iter(out.values())).new_zeros(()).float()
    terms = []  # (name, known mask, per-label loss)
    for name in ("climate", "month"):
        if name in out and name in targets:
            known = targets[name] >= 0
            terms.append((name, known, lambda k, n=name, **kw: F.cross_entropy(out[n][k].float(), targets[n][k], **kw)))
    if "regression" in out and "regression" in targets:
        y = targets["regression"]
        known = torch.isfinite(y)
        terms.append(("regression", known, lambda k, **kw: F.mse_loss(out["regression"][k].float(), y[k], **kw)))
    if not terms:
        return loss
    world = distributed_info()[1]
    counts = torch.stack([known.sum() for _, known, _ in terms])
    totals = all_reduce_counts(counts) if world > 1 else counts
    for (name, known, term), total in zip(terms, totals.tolist()):
        if total == 0:
            continue
        if world == 1:
            loss = loss + weights[name] * term(known)
        else:  # this share's sum over the mean share of known labels: DDP's average is then the global mean
            loss = loss + weights[name] * term(known, reduction="sum") * (world / total)
    return loss


@dataclass
class Standardiser:
    """The reference's regression transform: ``z = (f(x + offset) - mean) / std`` with ``f = log`` or identity.

    Values read back are kept inside the training values' range (a regression head does not know beyond what it
    was shown) and inside :data:`VALID_RANGES` (what the Earth has).

    Attributes:
        columns: names of the R columns.
        mean, std: (R,) statistics of the transformed training values (NaNs ignored).
        low, high: (R,) the smallest and largest raw training values; None (a file written before they were
            recorded): only :data:`VALID_RANGES` bounds the values.
    """

    columns: tuple[str, ...]
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    std: np.ndarray = field(default_factory=lambda: np.ones(0))
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @classmethod
    def fit(cls, columns: tuple[str, ...], values: np.ndarray) -> Standardiser:
        """Statistics from raw training values ``(N, R)`` (NaN = unknown)."""
        self = cls(tuple(columns), np.zeros(len(columns)), np.ones(len(columns)))
        t = self._forward(values)
        raw = np.asarray(values, np.float64).reshape(-1, len(columns))
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: mean 0, std 1 and no range below
            mean, std = np.nanmean(t, axis=0), np.nanstd(t, axis=0)
            low, high = np.nanmin(raw, axis=0), np.nanmax(raw, axis=0)
        self.mean = np.nan_to_num(mean)
        self.std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        self.low, self.high = np.nan_to_num(low, nan=-np.inf), np.nan_to_num(high, nan=np.inf)
        return self

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(R,) lowest and highest values read back: the training range inside :data:`VALID_RANGES`."""
        valid = np.array([VALID_RANGES[c] for c in self.columns], np.float64).reshape(-1, 2)
        low, high = valid[:, 0], valid[:, 1]
        if self.low is not None and self.high is not None:
            low, high = np.clip(self.low, low, high), np.clip(self.high, low, high)
        return low, high

    def _forward(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, np.float64).reshape(-1, len(self.columns)).copy()
        for j, col in enumerate(self.columns):
            offset, log = REGRESSION_TRANSFORMS[col]
            values[:, j] += offset
            if log:
                values[:, j] = np.log(np.maximum(values[:, j], _LOG_FLOOR))
        return values

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Raw values (N, R) in the columns' units -> standardised (N, R); NaN stays NaN."""
        return (self._forward(values) - self.mean) / self.std

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Standardised (N, R) -> values in the columns' units, inside :meth:`bounds`."""
        t = np.asarray(z, np.float64).reshape(-1, len(self.columns)) * self.std + self.mean
        low, high = self.bounds()
        for j, col in enumerate(self.columns):
            offset, log = REGRESSION_TRANSFORMS[col]
            t[:, j] = np.clip((np.exp(np.minimum(t[:, j], _LOG_CEILING)) if log else t[:, j]) - offset, low[j], high[j])
        return t

    def to_dict(self) -> dict[str, Any]:
        transforms = {c: dict(zip(("offset", "log"), REGRESSION_TRANSFORMS[c])) for c in self.columns}
        bounds = {} if self.low is None or self.high is None else {
            "low": [float(v) if np.isfinite(v) else None for v in self.low],
            "high": [float(v) if np.isfinite(v) else None for v in self.high]}
        return {"columns": list(self.columns), "transforms": transforms,
                "mean": self.mean.tolist(), "std": self.std.tolist(), **bounds}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardiser:
        unknown = [c for c in d["columns"] if c not in REGRESSION_TRANSFORMS]
        if unknown:
            raise InputError(f"standardiser has unknown column(s) {unknown}; retrain the model with 'pigeon train'")
        bound = lambda key, missing: (None if d.get(key) is None else  # noqa: E731
                                      np.array([missing if v is None else v for v in d[key]], np.float64))
        return cls(tuple(d["columns"]), np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64),
                   bound("low", -np.inf), bound("high", np.inf))

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Standardiser:
        return cls.from_dict(read_json(path, hint="the model folder is incomplete; retrain it with 'pigeon train'"))
