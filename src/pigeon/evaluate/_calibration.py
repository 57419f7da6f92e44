"""How well a predictions file's probabilities are calibrated: expected calibration error of P(within r km) per
radius, a reliability diagram, and the coverage and area of the credible regions (when the file has them)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pigeon.geo import RADII_KM

#: Equal-width probability bins of the reliability diagram and the ECE.
N_BINS = 10


def reliability(p: np.ndarray, hit: np.ndarray, bins: int = N_BINS) -> pd.DataFrame:
    """Per probability bin: count, mean predicted probability and observed rate (empty bins left out)."""
    p, hit = np.asarray(p, np.float64), np.asarray(hit, np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    n = np.bincount(which, minlength=bins)
    keep = n > 0
    mean_p = np.bincount(which, weights=p, minlength=bins)[keep] / n[keep]
    rate = np.bincount(which, weights=hit, minlength=bins)[keep] / n[keep]
    return pd.DataFrame({"bin": np.flatnonzero(keep), "n": n[keep], "p": mean_p, "rate": rate})


def expected_calibration_error(p: np.ndarray, hit: np.ndarray, bins: int = N_BINS) -> float:
    """ECE: the count-weighted mean gap between predicted probability and observed rate over the bins."""
    table = reliability(p, hit, bins)
    return float((table["n"] * (table["p"] - table["rate"]).abs()).sum() / max(table["n"].sum(), 1))


def _first_rows(pred_df: pd.DataFrame, joined: pd.DataFrame) -> pd.DataFrame:
    """The rank-1 row of each evaluated id, in ``joined``'s order."""
    rows = pred_df
    if "rank" in pred_df.columns:
        rows = pred_df[pd.to_numeric(pred_df["rank"], errors="coerce") == 1]
    rows = rows.assign(id=rows["id"].astype(str)).drop_duplicates("id").set_index("id")
    return rows.reindex(joined["id"].astype(str).to_numpy())


def has_calibration_columns(pred_df: pd.DataFrame) -> bool:
    """Whether predictions carry probabilities of their own: every ``p_within_<r>km`` column, or a credible region."""
    return all(f"p_within_{r}km" in pred_df.columns for r in RADII_KM) or "credible_area_km2" in pred_df.columns


def calibration_metrics(pred_df: pd.DataFrame, joined: pd.DataFrame, cells=None) -> dict | None:
    """``{"ece_1km", ..., "ece_2500km", "credible_q", "credible_coverage", "credible_area_km2_mean", "n"}`` of
    predictions with ``p_within_<r>km`` (and ``credible_*``) columns on their rank-1 rows; None without them.

    Args:
        pred_df: the predictions as read.
        joined: :func:`pigeon.evaluate.match_predictions` of them (truth, ``distance_km``).
        cells: the model's :class:`~pigeon.cells.GeoCells`, needed for the credible regions' coverage (whether the
            truth's cell is among the region's cells).
    """
    columns = [f"p_within_{r}km" for r in RADII_KM]
    has_p = all(c in pred_df.columns for c in columns)
    if not has_calibration_columns(pred_df):
        return None
    first = _first_rows(pred_df, joined)
    d = joined["distance_km"].to_numpy(np.float64)
    out: dict = {"n": int(len(d))}
    if has_p:
        for r, c in zip(RADII_KM, columns):
            p = pd.to_numeric(first[c], errors="coerce").to_numpy(np.float64)
            ok = np.isfinite(p)
            out[f"ece_{r}km"] = expected_calibration_error(np.clip(p[ok], 0, 1), d[ok] < r) if ok.any() else None
    if "credible_area_km2" in first.columns:
        out["credible_q"] = float(pd.to_numeric(first["credible_q"], errors="coerce").mean())
        out["credible_area_km2_mean"] = float(pd.to_numeric(first["credible_area_km2"], errors="coerce").mean())
        out["credible_coverage"] = _coverage(first, joined, cells)
    return out


def _coverage(first: pd.DataFrame, joined: pd.DataFrame, cells) -> float | None:
    """Share of truths whose cell is in their credible region (None without the cells or the region's cells)."""
    if cells is None or "credible_cells" not in first.columns:
        return None
    truth = cells.assign(joined["lat"].to_numpy(np.float64), joined["lon"].to_numpy(np.float64))
    inside = [str(c) in set(str(text).split(";")) for c, text in zip(truth, first["credible_cells"].fillna(""))]
    return float(np.mean(inside)) if inside else None


def plot_reliability(pred_df: pd.DataFrame, joined: pd.DataFrame, path: str | os.PathLike, name: str = "") -> Path:
    """Reliability diagram: observed share within each radius against the predicted P(within r), one curve per
    radius (point size: how many predictions), the ECE in the legend."""
    from pigeon.evaluate._plots import _CURVE_COLOURS, _figure, _save

    first = _first_rows(pred_df, joined)
    d = joined["distance_km"].to_numpy(np.float64)
    fig, ax = _figure((5.6, 5.0))
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfect calibration")
    for r, colour in zip(RADII_KM, _CURVE_COLOURS):
        p = pd.to_numeric(first[f"p_within_{r}km"], errors="coerce").to_numpy(np.float64)
        ok = np.isfinite(p)
        table = reliability(np.clip(p[ok], 0, 1), d[ok] < r)
        ece = expected_calibration_error(np.clip(p[ok], 0, 1), d[ok] < r)
        ax.plot(table["p"], table["rate"], color=colour, linewidth=1.5, marker="o", markersize=0,
                label=f"within {r:,} km (ECE {ece:.3f})")
        ax.scatter(table["p"], table["rate"], s=12 + 60 * np.sqrt(table["n"] / max(len(d), 1)), color=colour)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted P(within r km of the guess)",
           ylabel="observed share within r km", title=f"Reliability{f': {name}' if name else ''} (n = {len(d):,})")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path)


# The report's calibration entry (one of pigeon.evaluate._report.BREAKDOWNS); ``ctx`` is its ReportContext.
def calibration_applies(ctx) -> bool:
    """The entry applies to predictions with P(within r) or credible-region columns."""
    return has_calibration_columns(ctx.pred_df)


def annotate_calibration(ctx) -> None:
    """``metrics["calibration"]`` (:func:`calibration_metrics`) and its section of ``metrics.md``."""
    ctx.metrics["calibration"] = calibration_metrics(ctx.pred_df, ctx.joined, ctx.cells)
    ctx.sections.append(("## Calibration", calibration_markdown(ctx.metrics["calibration"])))


def write_reliability(ctx) -> None:
    """``reliability.png`` when the predictions carry P(within r)."""
    if "ece_200km" in ctx.metrics["calibration"]:
        plot_reliability(ctx.pred_df, ctx.joined, ctx.out / "reliability.png", name=ctx.name)


def calibration_markdown(metrics: dict) -> str:
    """The calibration entry as a Markdown table."""
    rows = [f"| ECE of P(within {r:,} km) | {metrics[f'ece_{r}km']:.3f} |" for r in RADII_KM
            if metrics.get(f"ece_{r}km") is not None]
    if metrics.get("credible_q") is not None:
        q = metrics["credible_q"]
        cover = metrics.get("credible_coverage")
        rows.append(f"| {100 * q:.0f} % credible region: coverage | "
                    f"{'n/a (pass --cells)' if cover is None else f'{100 * cover:.1f} %'} |")
        rows.append(f"| {100 * q:.0f} % credible region: mean area | {metrics['credible_area_km2_mean']:,.0f} km² |")
    return "| calibration | |\n|---|---:|\n" + "\n".join(rows) + "\n"
