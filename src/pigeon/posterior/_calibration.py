"""From the head's cell probabilities to calibrated cell masses: temperature, optional sharpening by retrieval, and
flattening toward the prior on unseen ground. Every parameter is fitted on the validation split by the negative
log-likelihood of the true cell (:func:`fit_calibration`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pigeon._config import JsonConfig
from pigeon.errors import InputError

#: Smallest probability taken to the log (float32 underflow stays finite).
_TINY = 1e-45
#: Rows calibrated per step (bounds the float64 temporaries).
ROWS_PER_STEP = 2048
#: Validation rows the fit uses at most (a seeded sample beyond).
MAX_FIT_ROWS = 8192
#: Quantiles of the validation similarity kept as the unseen-ground reference.
REFERENCE_QUANTILES = 201
#: Bounds of the fitted parameters: log T, log T_refine, flattening intercept a and log slope b.
_BOUNDS = {"log_t": (np.log(0.05), np.log(50.0)), "log_tr": (np.log(1e-3), np.log(1e3)), "a": (-15.0, 8.0),
           "log_b": (np.log(1e-3), np.log(20.0))}


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    """Row softmax where -inf entries get 0 (a row of only -inf gives zeros)."""
    top = np.max(z, axis=1, keepdims=True)
    e = np.exp(z - np.where(np.isfinite(top), top, 0.0))
    total = e.sum(axis=1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row, float64."""
    return _softmax_rows(np.log(np.maximum(np.asarray(probs, np.float64), _TINY)) / temperature)


def sharpened(p: np.ndarray, candidates: np.ndarray, scores: np.ndarray, temperature: float) -> np.ndarray:
    """``p`` with each row's candidate cells re-weighted by ``softmax(score / T)`` (the refiner's rule); the
    candidates' total mass is kept. Rows whose candidates have no score are left as they are."""
    rows = np.arange(len(p))[:, None]
    part = p[rows, candidates]
    weighted = part * _softmax_rows(np.asarray(scores, np.float64) / temperature)
    total, kept = weighted.sum(1, keepdims=True), part.sum(1, keepdims=True)
    out = p.copy()
    out[rows, candidates] = np.where(total > 0, weighted * kept / np.where(total > 0, total, 1.0), part)
    return out


def _logit(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 1e-12, 1 - 1e-12)
    return np.log(u) - np.log1p(-u)


#: The P(within r) values at which a recalibration map is stored: 101, evenly spaced in [0, 1].
WITHIN_GRID = np.linspace(0.0, 1.0, 101)


def fit_within(p: np.ndarray, hits: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """Per radius, the isotonic map from predicted P(within r) to the share of validation guesses within r, sampled
    at :data:`WITHIN_GRID` and kept ``1 / (n + 2)`` from 0 and 1 (n validation rows: never certain).

    Args:
        p: (N, R) predicted P(within r) of the validation guesses.
        hits: (N, R) whether each truth was within r of its guess.
    """
    from sklearn.isotonic import IsotonicRegression

    p, hits = np.asarray(p, np.float64), np.asarray(hits, np.float64)
    if p.shape != hits.shape or p.ndim != 2 or not len(p):
        raise InputError(f"P(within r) and hits must be the same (N, R) shape, got {p.shape} and {hits.shape}")
    margin = 1.0 / (len(p) + 2)
    maps = []
    for j in range(p.shape[1]):
        iso = IsotonicRegression(y_min=margin, y_max=1 - margin, out_of_bounds="clip").fit(p[:, j], hits[:, j])
        maps.append(tuple(round(float(v), 6) for v in iso.predict(WITHIN_GRID)))
    return tuple(maps)


@dataclass
class Calibration(JsonConfig):
    """The fitted map from head probabilities to calibrated cell masses (``calibration.json`` of a model folder).

    Attributes:
        temperature: T of ``softmax(logits / T)`` (1: the head as trained).
        sharpen_temperature: when set, the refiner's candidate cells are re-weighted by ``softmax(score / T)``.
        flatten: ``(a, b)``: the mass moved to the prior is ``sigmoid(a + b logit(unseen))``; None: never.
        reference: ascending quantiles of the validation queries' best similarity to the gallery.
        n_val: validation rows the fit saw.
        fitted_on: what the fit depends on (head and refiner digests), to tell a stale file.
        validation: NLL of the true cell on validation before and after.
        within: per objective, the recalibration of P(within r km of the guess): for each radius of
            :data:`pigeon.geo.RADII_KM`, the share of validation guesses found within r at each P of
            :data:`WITHIN_GRID` (isotonic, :func:`fit_within`); empty: P(within r) as the posterior says.
    """

    temperature: float = 1.0
    sharpen_temperature: float | None = None
    flatten: tuple[float, float] | None = None
    reference: tuple[float, ...] = ()
    n_val: int = 0
    fitted_on: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    within: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> bool:
        """Whether the masses are the head's probabilities unchanged (a model folder without a fit)."""
        return self.temperature == 1.0 and self.sharpen_temperature is None and self.flatten is None

    def within_probabilities(self, guess: str, p: np.ndarray, unseen: np.ndarray | None = None) -> np.ndarray:
        """(N, R) P(within each radius) of guesses made for ``guess``, through that objective's recalibration
        (unchanged without one), kept non-decreasing in the radius.

        The map was fitted on validation queries: a query less like the gallery than every one of them (its
        ``unseen`` score beyond theirs) gets the map only in part, :meth:`map_weight`, and the rest from ``p``,
        the posterior's own (flattened towards the prior), instead of the map's extrapolation from seen ground.
        """
        maps = self.within.get(guess)
        if not maps:
            return p
        p = np.asarray(p, np.float64)
        mapped = np.stack([np.interp(p[:, j], WITHIN_GRID, maps[j]) for j in range(p.shape[1])], axis=1)
        if unseen is not None:
            w = self.map_weight(unseen)[:, None]
            mapped = w * mapped + (1.0 - w) * p
        return np.maximum.accumulate(mapped, axis=1)

    def map_weight(self, unseen: np.ndarray) -> np.ndarray:
        """(N,) how far the P(within r) maps apply to queries of these unseen-ground scores: 1 inside the range of
        similarities validation saw, then decaying as :meth:`unseen`'s tail does (by e per spread of the
        validation similarities below the least similar validation query)."""
        lowest = 0.5 / max(self.n_val, 1)  # 1 - unseen of the least similar validation query
        return np.clip((1.0 - np.asarray(unseen, np.float64)) / lowest, 0.0, 1.0)

    def unseen(self, similarity: np.ndarray | None) -> np.ndarray | None:
        """Unseen-ground score in [0, 1] of each query: the share of validation queries more similar to the gallery
        than it (smoothly extrapolated beyond the most and least similar); None without a reference."""
        if similarity is None or len(self.reference) < 2:
            return None
        q = np.asarray(self.reference, np.float64)
        s = np.asarray(similarity, np.float64)
        lo = 0.5 / max(self.n_val, 1)
        levels = np.linspace(lo, 1 - lo, len(q))
        spread = max(float(np.interp(0.75, levels, q) - np.interp(0.25, levels, q)) / 1.349, 1e-9)
        below = lo * np.exp(np.minimum(s - q[0], 0.0) / spread)
        above = 1 - lo * np.exp(-np.maximum(s - q[-1], 0.0) / spread)
        inside = np.interp(s, q, levels)
        cdf = np.where(s < q[0], below, np.where(s > q[-1], above, inside))
        return np.clip(1.0 - cdf, 0.0, 1.0)

    def flattening(self, unseen: np.ndarray | None) -> np.ndarray | None:
        """Share of each query's mass moved to the prior (None: none)."""
        if self.flatten is None or unseen is None:
            return None
        a, b = self.flatten
        return 1.0 / (1.0 + np.exp(-(a + b * _logit(unseen))))

    def masses(self, probs: np.ndarray, prior: np.ndarray, candidates: np.ndarray | None = None,
               scores: np.ndarray | None = None, similarity: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated cell masses (B, C) float32 and the unseen score (B,) (None without a gallery reference).

        Args:
            probs: (B, C) the head's probabilities.
            prior: (C,) the training share of each cell.
            candidates, scores: (B, K) the refiner's candidate cells and their best-cluster similarity.
            similarity: (B,) each query's best similarity to the gallery.
        """
        unseen = self.unseen(similarity)
        if self.identity:
            return np.asarray(probs, np.float32), unseen
        lam = self.flattening(unseen)
        out = np.empty(np.shape(probs), np.float32)
        for lo in range(0, len(out), ROWS_PER_STEP):  # float64 temporaries of a few rows at a time
            rows = slice(lo, lo + ROWS_PER_STEP)
            p = tempered(probs[rows], self.temperature)
            if self.sharpen_temperature is not None and candidates is not None and scores is not None:
                p = sharpened(p, candidates[rows], scores[rows], self.sharpen_temperature)
            if lam is not None:
                p = (1 - lam[rows, None]) * p + lam[rows, None] * np.asarray(prior, np.float64)[None, :]
            out[rows] = p
        return out, unseen


def fit_calibration(probs: np.ndarray, labels: np.ndarray, prior: np.ndarray, *, candidates: np.ndarray | None = None,
                    scores: np.ndarray | None = None, similarity: np.ndarray | None = None, sharpen: bool = False,
                    seed: int = 0) -> Calibration:
    """Fit a :class:`Calibration` on validation rows by the NLL of their true cells (L-BFGS-B on log T, and on the
    sharpening temperature and the flattening when their inputs are given).

    Args:
        probs: (N, C) head probabilities of the validation queries.
        labels: (N,) their true cells.
        prior: (C,) the training share of each cell.
        candidates, scores: (N, K) the refiner's candidates and similarities (needed with ``sharpen``).
        similarity: (N,) each query's best similarity to the gallery: enables the unseen score and flattening.
        sharpen: fit the retrieval sharpening too.
        seed: seeds the sample of :data:`MAX_FIT_ROWS` rows when there are more.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64).ravel()
    if probs.ndim != 2 or len(probs) != len(labels) or not len(labels):
        raise InputError(f"calibration needs (N, C) probabilities and N labels, got {probs.shape} and {len(labels)}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise InputError(f"validation cells must be in [0, {probs.shape[1]})")
    if sharpen and (candidates is None or scores is None):
        raise InputError("sharpening needs the refiner's candidates and scores; build the refiner first")
    reference = _reference(similarity)
    base = Calibration(reference=reference, n_val=len(labels))
    unseen = base.unseen(similarity)
    rows = np.arange(len(labels))
    if len(rows) > MAX_FIT_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), MAX_FIT_ROWS, replace=False))
    pick = lambda a: None if a is None else np.asarray(a)[rows]  # noqa: E731
    problem = _Problem(probs[rows], labels[rows], np.asarray(prior, np.float64), pick(candidates), pick(scores),
                       pick(unseen), sharpen)
    before = float(-np.mean(np.log(np.maximum(problem.probs[np.arange(len(rows)), problem.labels], 1e-300))))
    params = problem.solve()
    fitted = problem.calibration(params, base)
    fitted.validation = {"nll_before": before, "nll_after": problem.nll(params), "rows": int(len(rows))}
    return fitted


def _reference(similarity: np.ndarray | None) -> tuple[float, ...]:
    if similarity is None:
        return ()
    s = np.asarray(similarity, np.float64)
    s = s[np.isfinite(s)]
    if len(s) < 2:
        return ()
    return tuple(float(v) for v in np.quantile(s, np.linspace(0, 1, REFERENCE_QUANTILES)))


@dataclass
class _Problem:
    """The NLL of the true cells as a function of the parameter vector ``[log T, (log T_r), (a, log b)]``."""

    probs: np.ndarray
    labels: np.ndarray
    prior: np.ndarray
    candidates: np.ndarray | None
    scores: np.ndarray | None
    unseen: np.ndarray | None
    sharpen: bool

    @property
    def names(self) -> list[str]:
        return ["log_t"] + (["log_tr"] if self.sharpen else []) + (["a", "log_b"] if self.unseen is not None else [])

    def start(self) -> np.ndarray:
        values = {"log_t": 0.0, "log_tr": 0.0, "a": -4.0, "log_b": 0.0}
        return np.array([values[n] for n in self.names])

    def calibration(self, x: np.ndarray, base: Calibration) -> Calibration:
        v = dict(zip(self.names, x.tolist()))
        flatten = (v["a"], float(np.exp(v["log_b"]))) if "a" in v else None
        return Calibration(temperature=float(np.exp(v["log_t"])),
                           sharpen_temperature=float(np.exp(v["log_tr"])) if "log_tr" in v else None,
                           flatten=flatten, reference=base.reference, n_val=base.n_val)

    def nll(self, x: np.ndarray) -> float:
        cal = self.calibration(x, Calibration(n_val=len(self.labels)))
        p = tempered(self.probs, cal.temperature)
        if cal.sharpen_temperature is not None:
            p = sharpened(p, self.candidates, self.scores, cal.sharpen_temperature)
        mass = p[np.arange(len(p)), self.labels]
        lam = cal.flattening(self.unseen)
        if lam is not None:
            mass = (1 - lam) * mass + lam * self.prior[self.labels]
        return float(-np.mean(np.log(np.maximum(mass, 1e-300))))

    def solve(self) -> np.ndarray:
        from scipy.optimize import minimize

        bounds = [_BOUNDS[n] for n in self.names]
        best = minimize(self.nll, self.start(), method="L-BFGS-B", bounds=bounds)
        return best.x
