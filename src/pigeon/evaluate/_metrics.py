"""Geolocation metrics: accuracy within the paper's radii, error statistics, GeoGuessr score, country accuracy.

Every rule that changes a number (distance, ``<`` or ``<=``, rounding, how a country is decided) comes from an
evaluation protocol (:mod:`pigeon.evaluate._protocols`); the default is PIGEON's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pigeon.errors import InputError
from pigeon.evaluate._protocols import OSV5M_TRUTH_COLUMNS, Protocol, get_protocol
from pigeon.geo import RADII_KM, spherical_mean
from pigeon.validation import check_table_coords, find_columns
from pigeon.validation import listed as _listed

#: The metric keys of ``metrics.json``, in order, under every protocol (a metric a protocol does not define is
#: None); ``metrics.json`` also holds ``protocol`` (first) and the protocol's own extra metrics (OSV-5M's
#: ``acc_country`` .. ``acc_city``).
METRIC_KEYS = ("n", *(f"acc_{r}km" for r in RADII_KM), "median_km", "mean_km", "geoscore_mean", "country_acc")
#: Edges (km) of the distance-to-training bands: < 25, 25-200, 200-750 and >= 750 km.
DISTANCE_BANDS_KM = (25, 200, 750)
#: The per-area metrics of :func:`metrics_by_group` (no country accuracy: an area is inside one country).
GROUP_KEYS = ("n", "acc_25km", "acc_200km", "acc_750km", "acc_2500km", "median_km", "mean_km", "geoscore_mean")


def _clean(df: pd.DataFrame, what: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Columns ``id, lat, lon`` (any case) plus ``optional`` ones, with every bad coordinate in one error."""
    df = find_columns(df, ("id", "lat", "lon"), what, what="it", optional=optional)
    out = df[[c for c in ("id", "lat", "lon", *optional) if c in df.columns]].copy()
    out.attrs = dict(df.attrs)
    out["id"] = out["id"].astype(str)
    check_table_coords(out, what)
    return out.reset_index(drop=True)


def _top1(pred: pd.DataFrame) -> pd.DataFrame:
    """Validated rank-1 predictions, one row per id."""
    pred = _clean(pred, "predictions", optional=("rank", "prob"))
    if "rank" in pred.columns:
        rank = pd.to_numeric(pred["rank"], errors="coerce")
        bad = np.flatnonzero(~(rank >= 1) | (rank % 1 != 0))
        if bad.size:
            rows = (f"row {r} rank={pred['rank'].astype(object).iat[r]!r}" for r in bad)
            raise InputError(f"predictions: rank must be a whole number >= 1 (1 = top); bad rows: {_listed(rows)}")
        dup = pred.duplicated(["id", "rank"], keep=False).to_numpy()
        top = pred[rank.to_numpy() == 1]
        no_top = pd.Index(pred["id"].unique()).difference(top["id"])
        if len(no_top):
            raise InputError(f"predictions: {len(no_top)} id(s) have no rank-1 row: {_listed(map(repr, no_top))}")
    else:
        dup = pred.duplicated("id", keep=False).to_numpy()
        top = pred
    if dup.any():
        rows = np.flatnonzero(dup)
        raise InputError(f"predictions: duplicate id(s) {_listed(repr(i) for i in pred['id'].iloc[rows].unique())} "
                         f"(rows {_listed(rows)}); give one row per id, or several with distinct rank")
    return top[["id", "lat", "lon"]].reset_index(drop=True)


def match_predictions(pred_df: pd.DataFrame, truth_df: pd.DataFrame,
                      protocol: str | Protocol | None = None) -> pd.DataFrame:
    """Join top-1 predictions to the truth on ``id`` and measure each error.

    Args:
        pred_df: ``id, lat, lon`` (top-1), optionally several rows per id with ``rank`` (1 = top) and ``prob``.
        truth_df: ``id, lat, lon`` for every evaluated image, e.g. a manifest (OSV-5M's ``unique_*`` area
            columns are kept when present).
        protocol: whose distance to measure (default ``"pigeon"``, see :data:`pigeon.evaluate.PROTOCOLS`).

    Returns:
        DataFrame in truth order: ``id, lat, lon`` (truth), ``pred_lat, pred_lon``, ``distance_km``.

    Raises:
        InputError: missing columns, bad coordinates, duplicate ids, or ids present on one side only
            (every offending row is named).
    """
    pred = _top1(pred_df)
    truth = _clean(truth_df, "truth", optional=OSV5M_TRUTH_COLUMNS)
    dup = truth["id"].duplicated(keep=False).to_numpy()
    if dup.any():
        raise InputError(f"truth: duplicate id(s) {_listed(repr(i) for i in truth['id'][dup].unique())} "
                         f"(rows {_listed(np.flatnonzero(dup))}); ids must be unique")
    extra = pd.Index(pred["id"]).difference(truth["id"])
    if len(extra):
        raise InputError(f"predictions: {len(extra)} id(s) not in the truth: {_listed(map(repr, extra))}; "
                         "evaluate against the manifest the predictions were made for")
    unpredicted = pd.Index(truth["id"]).difference(pred["id"])
    if len(unpredicted):
        raise InputError(f"predictions: {len(unpredicted)} truth id(s) have no prediction: "
                         f"{_listed(map(repr, unpredicted))}; predict them, or select the evaluated split "
                         "(pigeon evaluate --split test)")
    joined = truth.merge(pred.rename(columns={"lat": "pred_lat", "lon": "pred_lon"}), on="id", how="left")
    joined["distance_km"] = get_protocol(protocol).distance(joined["pred_lat"], joined["pred_lon"], joined["lat"],
                                                            joined["lon"])
    return joined


def country_accuracy(true_lat, true_lon, pred_lat, pred_lon) -> float | None:
    """Share of guesses inside the true location's country, by PIGEON's rule (the ``pigeon`` protocol): the country
    polygon covering the truth (else the nearest one), which must contain the guess.

    Args:
        true_lat, true_lon, pred_lat, pred_lon: degrees, shape (n,).

    Returns:
        A fraction in [0, 1]; None when country lookup is unavailable or there are no points.
    """
    try:
        from pigeon.geography import countries  # noqa: F401  (the polygons)
    except ImportError:
        return None
    from pigeon.evaluate._protocols import country_by_polygon

    joined = pd.DataFrame({"lat": true_lat, "lon": true_lon, "pred_lat": pred_lat, "pred_lon": pred_lon})
    return country_by_polygon(joined)["country_acc"]


def summarize(joined: pd.DataFrame, protocol: str | Protocol | None = None) -> dict:
    """``protocol``, the :data:`METRIC_KEYS` and the protocol's extra metrics for a table from
    :func:`match_predictions` (measured with the same protocol)."""
    rules = get_protocol(protocol)
    d = joined["distance_km"].to_numpy(dtype=np.float64)
    metrics: dict = {"protocol": rules.name, "n": int(d.size)}
    metrics.update({f"acc_{r}km": float(np.mean(rules.within(d, r))) for r in RADII_KM})
    metrics.update(median_km=float(np.median(d)), mean_km=float(np.mean(d)),
                   geoscore_mean=None if rules.geoscore is None else float(np.mean(rules.geoscore(d))),
                   country_acc=None)
    if rules.areas is not None:
        try:
            metrics.update(rules.areas(joined))
        except ImportError:  # no country polygons or places
            pass
    return metrics


def compute_metrics(pred_df: pd.DataFrame, truth_df: pd.DataFrame, protocol: str | Protocol | None = None) -> dict:
    """Evaluate top-1 predictions against the truth.

    Args:
        pred_df: ``id, lat, lon`` (degrees), optionally ``rank`` (1 = top) and ``prob``.
        truth_df: ``id, lat, lon`` (degrees) of every evaluated image.
        protocol: whose definitions (default ``"pigeon"``: haversine R = 6378.137 km, ``d < r``, GeoGuessr score
            rounded per image, country by polygon); see :data:`pigeon.evaluate.PROTOCOLS`.

    Returns:
        ``{"protocol", "n", "acc_1km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km", "median_km", "mean_km",
        "geoscore_mean", "country_acc"}`` (fractions and km; None for a metric the protocol does not define), plus
        the protocol's extra metrics.
    """
    return summarize(match_predictions(pred_df, truth_df, protocol), protocol)


def mean_baseline(train_df: pd.DataFrame, ids) -> pd.DataFrame:
    """The trivial baseline's predictions: every id guessed at the spherical mean of the training locations.

    Args:
        train_df: ``lat, lon`` of the training locations.
        ids: the ids to predict.

    Returns:
        ``id, lat, lon``, ready for :func:`compute_metrics`.
    """
    lat, lon = spherical_mean(train_df["lat"], train_df["lon"])
    return pd.DataFrame({"id": list(ids), "lat": lat, "lon": lon})


def band_labels(edges=DISTANCE_BANDS_KM) -> list[str]:
    """``["< 25 km", "25-200 km", "200-750 km", ">= 750 km"]`` for the default edges."""
    edges = [f"{e:,g}" for e in edges]
    return [f"< {edges[0]} km", *(f"{a}-{b} km" for a, b in zip(edges[:-1], edges[1:])), f">= {edges[-1]} km"]


def distance_bands(distance_km, edges=DISTANCE_BANDS_KM) -> np.ndarray:
    """The band label of each distance: every distance falls in exactly one band (``[lo, hi)``)."""
    labels = np.array(band_labels(edges), dtype=object)
    return labels[np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(distance_km, np.float64),
                                  side="right")]


def metrics_by_band(joined: pd.DataFrame, column: str = "train_distance_km", edges=DISTANCE_BANDS_KM,
                    protocol: str | Protocol | None = None) -> pd.DataFrame:
    """The :data:`METRIC_KEYS` of each distance band (rows), e.g. by distance to the nearest training location.

    Args:
        joined: a table from :func:`match_predictions` with the distance ``column`` added.
        column: the distance that defines the bands (km).
        edges: band edges in km.
        protocol: the protocol of ``joined``.

    Returns:
        DataFrame indexed by band label (all bands, in order; an empty band has ``n == 0`` and NaN metrics).
    """
    band = distance_bands(joined[column], edges)
    rows = {}
    for label in band_labels(edges):
        part = joined[band == label]
        rows[label] = summarize(part, protocol) if len(part) else {"n": 0, **{k: np.nan for k in METRIC_KEYS[1:]}}
    return pd.DataFrame.from_dict(rows, orient="index")[list(METRIC_KEYS)].rename_axis(column.removesuffix("_km"))


def metrics_by_group(joined: pd.DataFrame, key, protocol: str | Protocol | None = None) -> pd.DataFrame:
    """:data:`GROUP_KEYS` per group (e.g. per country or cell of the true location); missing keys left out.

    Returns:
        DataFrame with a ``key`` column and :data:`GROUP_KEYS`, most images first (``geoscore_mean`` NaN under a
        protocol without GeoScore).
    """
    rules = get_protocol(protocol)
    d = joined["distance_km"].to_numpy(np.float64)
    frame = pd.DataFrame({"key": np.asarray(key, dtype=object), "d": d,
                          "score": np.nan if rules.geoscore is None else rules.geoscore(d)})
    frame = frame.assign(**{f"in_{r}": rules.within(d, r) for r in (25, 200, 750, 2500)})
    frame = frame[frame["key"].notna()]
    grouped = frame.groupby("key", sort=False)
    out = grouped["d"].agg(n="size", median_km="median", mean_km="mean")
    for r in (25, 200, 750, 2500):
        out[f"acc_{r}km"] = grouped[f"in_{r}"].mean().astype(float)
    out["geoscore_mean"] = grouped["score"].mean()
    return out.reset_index()[["key", *GROUP_KEYS]].sort_values(["n", "key"], ascending=[False, True],
                                                                  ignore_index=True)
