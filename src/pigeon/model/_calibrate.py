"""Fitting a geolocator's calibration (temperature, retrieval sharpening, unseen-ground flattening) and choosing its
default guess on its validation split: called after head training, after rebuilding the refiner, and by
``pigeon calibrate``."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from pigeon.errors import InputError
from pigeon.geo import RADII_KM, haversine_km
from pigeon.posterior import GUESSES, Calibration, fit_calibration, fit_within

#: Validation rows the choice of the default guess looks at, at most (an evenly spaced subset of larger splits).
GUESS_ROWS = 5000
#: Another objective replaces ``mode`` (the placer's own answer) as the default only when its validation mean km is
#: lower in at least this share of paired bootstrap resamples of the validation rows (a noisy win does not count).
GUESS_CONFIDENCE = 0.95
GUESS_RESAMPLES = 1000


def calibrate(geo, X: np.ndarray, coords: np.ndarray, *, sharpen: bool | None = None, seed: int = 0) -> Calibration:
    """Fit ``geo.calibration`` on validation embeddings ``X`` (N, D) and their true ``coords`` (N, 2).

    The validation rows must not be in the refiner's gallery (they would look like ground the model has seen).

    Args:
        sharpen: fit the retrieval sharpening too (default: the model's ``posterior.sharpen``); needs a refiner.
        seed: seeds the row sample of large validation sets.

    Returns:
        The fitted :class:`Calibration` (also set on ``geo``, saved with the model folder).
    """
    X = geo._check_embeddings(X)
    coords = np.asarray(coords, np.float64).reshape(-1, 2)
    if len(X) != len(coords) or not len(X):
        raise InputError(f"calibration needs as many validation embeddings as locations, got {len(X)} and "
                         f"{len(coords)}; pass the validation split")
    probs = geo.forward_embeddings(X)["probs"]
    labels = geo.cells.assign(coords[:, 0], coords[:, 1])
    retrieval = geo._retrieval(X, probs)
    similarity = None if retrieval is None else np.max(retrieval[1], axis=1, initial=-np.inf)
    sharpen = geo.posterior_config.sharpen if sharpen is None else sharpen
    candidates, scores = retrieval if retrieval is not None else (None, None)
    fitted = fit_calibration(probs, labels, geo.support.prior, candidates=candidates, scores=scores,
                             similarity=similarity, sharpen=bool(sharpen and retrieval is not None), seed=seed)
    fitted.fitted_on = geo.calibration_fingerprint()
    geo.calibration = fitted
    fitted.validation["mean_km_by_guess"] = choose_guess(geo, X, coords)
    return fitted


def choose_guess(geo, X: np.ndarray, coords: np.ndarray) -> dict[str, float]:
    """Set the model's default guess (``posterior.guess``) by :func:`pick_guess` on the validation rows: the
    placer's own answer (``mode``) unless another objective of :data:`pigeon.posterior.GUESSES` is clearly nearer
    the truth there. The same guesses fit each objective's recalibration of P(within r)
    (:func:`pigeon.posterior.fit_within`; with a gallery). Returns each objective's mean km; the share of resamples
    each other objective won is in ``geo.calibration.validation["guess_wins_over_mode"]``."""
    rows = np.unique(np.linspace(0, len(X) - 1, min(len(X), GUESS_ROWS)).astype(np.int64))
    X, coords = X[rows], coords[rows]
    km_by, within = {}, {}
    for guess in GUESSES:
        preds = geo.predict_embeddings(X, top_k=1, guess=guess)
        lat, lon = np.array([p.lat for p in preds]), np.array([p.lon for p in preds])
        km = km_by[guess] = haversine_km(lat, lon, coords[:, 0], coords[:, 1])
        if preds[0].p_within is not None:
            p = np.array([[pred.p_within[r] for r in RADII_KM] for pred in preds])
            within[guess] = fit_within(p, km[:, None] <= np.asarray(RADII_KM, np.float64)[None, :])
    guess, wins = pick_guess(km_by)
    geo.posterior_config = geo.posterior_config.replace(guess=guess)
    geo.calibration.within = within
    geo.calibration.validation["guess_wins_over_mode"] = wins
    return {g: round(float(np.mean(km)), 1) for g, km in km_by.items()}


def pick_guess(km_by_guess: dict[str, np.ndarray], confidence: float = GUESS_CONFIDENCE,
               resamples: int = GUESS_RESAMPLES, seed: int = 0) -> tuple[str, dict[str, float]]:
    """The default objective from each objective's validation errors (km, the same rows for all): ``mode`` unless
    others have a lower mean km in at least ``confidence`` of ``resamples`` paired bootstrap resamples of the rows,
    then the one of those with the lowest mean. Returns it and each other objective's share of resamples won."""
    base = np.asarray(km_by_guess["mode"], np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(base), (resamples, len(base)))
    wins = {g: round(float(((np.asarray(km, np.float64) - base)[draws].mean(axis=1) < 0).mean()), 3)
            for g, km in km_by_guess.items() if g != "mode"}
    clear = [g for g, share in wins.items() if share >= confidence]
    return min(clear, key=lambda g: float(np.mean(km_by_guess[g])), default="mode"), wins


def calibrate_manifest(geo, manifest: str | os.PathLike | pd.DataFrame, embeddings=None, *, split: str = "val",
                       sharpen: bool | None = None) -> Calibration:
    """:func:`calibrate` on the ``split`` rows of a manifest, read from an embeddings store made with the model's
    backbone, or embedded from the images when ``embeddings`` is None."""
    from pigeon.data import read_manifest, select_split
    from pigeon.model._predict import manifest_embeddings

    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    if "split" not in df.columns or not (df["split"] == split).any():
        raise InputError(f"the manifest has no {split!r} rows to calibrate on; give it a validation split "
                         "('pigeon data split') or pass --split")
    df = select_split(df, split)
    if embeddings is not None and not hasattr(embeddings, "get_views"):
        from pigeon.embed import Embeddings

        embeddings = Embeddings.load(embeddings)
    X, ids, _ = manifest_embeddings(geo, df, embeddings, skip_errors=True)
    if not len(ids):
        raise InputError(f"none of the {len(df)} {split} rows has an embedding or a readable image; check the manifest")
    coords = df.set_index(df["id"].astype(str)).loc[ids, ["lat", "lon"]].to_numpy(np.float64)
    return calibrate(geo, X, coords, sharpen=sharpen)


def recalibrate(geo, manifest, embeddings=None) -> str:
    """Refit ``geo``'s calibration after its head or refiner changed: on the manifest's ``val`` rows when it has
    some, else drop it (the head's probabilities as they are). Returns a line saying which."""
    df = manifest
    if not isinstance(df, pd.DataFrame):
        from pigeon.data import read_manifest

        df = read_manifest(manifest)
    if "split" in df.columns and (df["split"] == "val").any():
        fitted = calibrate_manifest(geo, df, embeddings)
        return f"recalibrated on {fitted.n_val} val location(s): temperature {fitted.temperature:.3f}"
    geo.calibration = Calibration()
    return "no val rows to recalibrate on: the calibration was dropped; run 'pigeon calibrate' with a val split"
