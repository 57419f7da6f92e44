"""Calibration is learned: a known temperature is recovered, sharpening and flattening are fitted where they help,
and the unseen score orders queries by how unlike the validation ones they are."""

from __future__ import annotations

import numpy as np
import pytest

from pigeon.errors import InputError
from pigeon.posterior import Calibration, fit_calibration, fit_within
from pigeon.posterior._calibration import sharpened, tempered


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _sample(p, rng):
    return (p.cumsum(1) > rng.uniform(size=(len(p), 1))).argmax(1)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_a_known_temperature_is_recovered(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.0, (6000, 40))
    labels = _sample(_softmax(logits / true_t), rng)
    fitted = fit_calibration(_softmax(logits), labels, np.full(40, 1 / 40))
    assert fitted.temperature == pytest.approx(true_t, rel=0.08)
    assert fitted.validation["nll_after"] <= fitted.validation["nll_before"] + 1e-9
    assert fitted.flatten is None and fitted.sharpen_temperature is None and fitted.unseen(None) is None


def test_identity_leaves_the_probabilities_as_they_are():
    probs = _softmax(np.random.default_rng(1).normal(size=(5, 7))).astype(np.float32)
    masses, unseen = Calibration().masses(probs, np.full(7, 1 / 7))
    assert Calibration().identity and unseen is None
    np.testing.assert_array_equal(masses, probs)


def test_tempered_and_sharpened_keep_rows_normalised():
    rng = np.random.default_rng(2)
    p = _softmax(rng.normal(size=(4, 9)))
    t = tempered(p, 3.0)
    np.testing.assert_allclose(t.sum(1), 1)
    assert (t.max(1) < p.max(1)).all()  # T > 1 flattens
    cands = np.argsort(-p, axis=1)[:, :3]
    scores = rng.normal(size=(4, 3))
    scores[0] = -np.inf  # no cluster: left as it is
    s = sharpened(t, cands, scores, 0.5)
    np.testing.assert_allclose(s.sum(1), 1)
    np.testing.assert_allclose(s[0], t[0])
    rows = np.arange(4)[:, None]
    np.testing.assert_allclose(s[rows, cands].sum(1), t[rows, cands].sum(1))  # the candidates' mass is kept


def test_sharpening_is_fitted_when_retrieval_knows_the_cell():
    rng = np.random.default_rng(3)
    n, c, k = 4000, 30, 5
    logits = rng.normal(0, 1.0, (n, c))
    labels = _sample(_softmax(logits), rng)
    cands = np.argsort(-logits, axis=1)[:, :k]
    scores = rng.normal(0, 1, (n, k)) + 3.0 * (cands == labels[:, None])  # the true cell's cluster is closest
    plain = fit_calibration(_softmax(logits), labels, np.full(c, 1 / c))
    sharp = fit_calibration(_softmax(logits), labels, np.full(c, 1 / c), candidates=cands, scores=scores, sharpen=True)
    assert sharp.sharpen_temperature is not None
    assert sharp.validation["nll_after"] < plain.validation["nll_after"] - 0.1
    with pytest.raises(InputError, match="refiner"):
        fit_calibration(_softmax(logits), labels, np.full(c, 1 / c), sharpen=True)


def test_unseen_score_orders_queries_and_stays_in_range():
    rng = np.random.default_rng(4)
    cal = fit_calibration(_softmax(rng.normal(size=(500, 8))), rng.integers(0, 8, 500), np.full(8, 1 / 8),
                          similarity=rng.normal(-1.0, 0.1, 500))
    s = np.array([-5.0, -1.5, -1.2, -1.0, -0.8, -0.5, 2.0])
    u = cal.unseen(s)
    assert np.all((0 <= u) & (u <= 1)) and np.all(np.diff(u) < 0)  # less similar: more unseen
    assert u[0] > 0.999 and u[-1] < 0.001 and u[3] == pytest.approx(0.5, abs=0.06)


def test_flattening_is_fitted_when_unusual_queries_are_wrong():
    """Queries that are unlike the gallery have labels the head cannot know: the fit moves their mass to the
    prior, and a query far beyond anything in validation is answered with almost the prior."""
    rng = np.random.default_rng(5)
    n, c = 3000, 20
    similarity = rng.normal(0.0, 1.0, n)
    logits = rng.normal(0, 3.0, (n, c))
    labels = _sample(_softmax(logits), rng)
    unusual = similarity < -1.0
    labels[unusual] = rng.integers(0, c, unusual.sum())
    prior = np.full(c, 1 / c)
    fitted = fit_calibration(_softmax(logits), labels, prior, similarity=similarity)
    assert fitted.flatten is not None and fitted.flatten[1] > 0.3
    assert fitted.validation["nll_after"] < fitted.validation["nll_before"] - 0.1
    probs = _softmax(logits[:2] * 5)
    masses, unseen = fitted.masses(probs, prior, similarity=np.array([3.0, -12.0]))
    assert unseen[1] > 0.999 and np.abs(masses[1] - prior).max() < 0.02
    assert masses[0].max() > 0.5
    again = Calibration.from_dict(fitted.to_dict())
    np.testing.assert_array_equal(again.masses(probs, prior, similarity=np.array([3.0, -12.0]))[0], masses)


def test_bad_calibration_inputs():
    with pytest.raises(InputError, match="labels"):
        fit_calibration(np.full((3, 4), 0.25), np.array([0, 1]), np.full(4, 0.25))
    with pytest.raises(InputError, match=r"\[0, 4\)"):
        fit_calibration(np.full((2, 4), 0.25), np.array([0, 7]), np.full(4, 0.25))


def test_p_within_recalibration_makes_under_confident_probabilities_calibrated():
    """Truths fall within r with probability sqrt(p) (the model under-confident): the map fitted on one sample
    brings the expected calibration error on another down to the sampling noise, stays inside (0, 1) and
    keeps P(within r) non-decreasing in r."""
    from pigeon.evaluate import expected_calibration_error

    rng = np.random.default_rng(0)

    def sample(n):
        p = np.sort(rng.uniform(0, 1, (n, 3)), axis=1)  # three radii, nested
        return p, rng.uniform(0, 1, (n, 1)) < np.sqrt(p)

    p_fit, hits_fit = sample(4000)
    cal = Calibration(within={"mode": fit_within(p_fit, hits_fit)})
    p, hits = sample(4000)
    mapped = cal.within_probabilities("mode", p)
    for j in range(3):
        raw = expected_calibration_error(p[:, j], hits[:, j])
        fixed = expected_calibration_error(mapped[:, j], hits[:, j])
        assert raw > 0.1 and fixed < 0.03, (j, raw, fixed)
    assert (mapped > 0).all() and (mapped < 1).all() and (np.diff(mapped, axis=1) >= 0).all()
    np.testing.assert_array_equal(cal.within_probabilities("distance", p), p)  # no map: unchanged
    again = Calibration.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.within_probabilities("mode", p), mapped)
    with pytest.raises(InputError, match="same"):
        fit_within(p, hits[:, :2])


def test_p_within_maps_apply_only_as_far_as_validation_saw_such_queries():
    """A map fitted on validation applies in full to a query inside validation's similarities; one unlike every
    validation query (unseen score beyond the least similar one) gets the posterior's own P instead of the map's
    extrapolation, and the weight between falls smoothly."""
    rng = np.random.default_rng(1)
    p_fit = np.sort(rng.uniform(0, 1, (2000, 2)), axis=1)
    cal = Calibration(within={"mode": fit_within(p_fit, rng.uniform(0, 1, (2000, 1)) < np.sqrt(p_fit))},
                      reference=tuple(np.linspace(0.2, 0.8, 11)), n_val=100)
    p = np.tile([[0.3, 0.5]], (4, 1))
    similarity = np.array([0.5, 0.2, 0.1, -4.0])  # typical; the least similar validation query; beyond; far beyond
    unseen = cal.unseen(similarity)
    weight = cal.map_weight(unseen)
    assert weight[0] == 1 and weight[1] == pytest.approx(1) and 0 < weight[2] < 1 and weight[3] < 1e-6
    mapped = cal.within_probabilities("mode", p, unseen)
    full = cal.within_probabilities("mode", p)
    np.testing.assert_allclose(mapped[:2], full[:2], atol=1e-6)
    np.testing.assert_allclose(mapped[3], p[3], atol=1e-5)  # far from validation: the posterior's own number
    assert (full[2] > mapped[2]).all() and (mapped[2] > p[2]).all()  # between: part of the way
