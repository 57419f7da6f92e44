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
    """Set the model's default guess (``posterior.guess``) to the objective of :data:`pigeon.posterior.GUESSES`
    whose guesses are nearest the truth on validation (mean km; a tie goes to the earlier one): the placer's own
    answer where the model knows the ground, the posterior's where it is unsure. The same guesses fit each
    objective's recalibration of P(within r) (:func:`pigeon.posterior.fit_within`; with a gallery). Returns each
    objective's mean km."""
    rows = np.unique(np.linspace(0, len(X) - 1, min(len(X), GUESS_ROWS)).astype(np.int64))
    X, coords = X[rows], coords[rows]
    errors, within = {}, {}
    for guess in GUESSES:
        preds = geo.predict_embeddings(X, top_k=1, guess=guess)
        lat, lon = np.array([p.lat for p in preds]), np.array([p.lon for p in preds])
        km = haversine_km(lat, lon, coords[:, 0], coords[:, 1])
        errors[guess] = round(float(np.mean(km)), 1)
        if preds[0].p_within is not None:
            p = np.array([[pred.p_within[r] for r in RADII_KM] for pred in preds])
            within[guess] = fit_within(p, km[:, None] <= np.asarray(RADII_KM, np.float64)[None, :])
    geo.posterior_config = geo.posterior_config.replace(guess=min(GUESSES, key=errors.__getitem__))
    geo.calibration.within = within
    return errors


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
