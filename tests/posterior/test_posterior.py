"""The posterior's answers against brute force: guesses against a fine grid, P(within r) against Monte Carlo,
credible regions against their definition, and the bounds that keep the work small."""

from __future__ import annotations

import numpy as np
import pytest

from pigeon.errors import InputError
from pigeon.geo import RADII_KM, destination_point, haversine_km, wrap_lon
from pigeon.posterior import CellSupport, Posterior, PosteriorConfig, coordinate_decimals, disc_share

CENTROIDS = np.array([[10.0, 10.0], [12.0, 14.0], [40.0, -100.0], [-30.0, 140.0], [50.0, 10.0], [0.0, 179.5]])


@pytest.fixture(scope="module")
def support() -> CellSupport:
    """Six cells, 20 training locations each (one cell astride the antimeridian), 8 kept per cell."""
    rng = np.random.default_rng(0)
    latlon = np.concatenate([c + rng.normal(0, 1.5, (20, 2)) for c in CENTROIDS])
    latlon[:, 1] = wrap_lon(latlon[:, 1])
    return CellSupport.build(CENTROIDS, np.full(6, 2e5), latlon, np.repeat(np.arange(6), 20), points_per_cell=8)


MASSES = np.array([[0.5, 0.3, 0.05, 0.05, 0.05, 0.05],     # one region holds most of the mass
                   [0.1, 0.1, 0.2, 0.2, 0.2, 0.2],         # spread over the globe
                   [0.02, 0.02, 0.02, 0.02, 0.02, 0.9]])   # across the antimeridian


def _grid(step: float = 0.5) -> np.ndarray:
    lat, lon = np.arange(-90 + step / 2, 90, step), np.arange(-180 + step / 2, 180, step)
    return np.stack(np.meshgrid(lat, lon, indexing="ij"), -1).reshape(-1, 2)


def _objective_on(points: np.ndarray, masses: np.ndarray, support, objective: str) -> np.ndarray:
    post = Posterior(np.repeat(masses[None], len(points), axis=0), support)
    return post.expected(points, objective)


def _exhaustive(post: Posterior, row: int, objective: str) -> float:
    """The best objective over every point the search may choose: all training locations and centroids."""
    candidates = np.concatenate([post.support.points[post.support.weights > 0], post.support.centroids])
    values = _objective_on(candidates, post.masses[row], post.support, objective)
    return values.min() if objective == "distance" else values.max()


@pytest.mark.parametrize("objective", ["distance", "score"])
def test_guesses_equal_a_brute_force_search(support, objective):
    post = Posterior(MASSES, support)
    latlon, cell = post.guess(objective)
    value = post.expected(latlon, objective)
    grid = _grid()
    for row in range(len(MASSES)):
        on_grid = np.concatenate([_objective_on(grid[i:i + 20000], MASSES[row], support, objective)
                                  for i in range(0, len(grid), 20000)])
        best = on_grid.min() if objective == "distance" else on_grid.max()
        # the best candidate, found exactly; and within 0.5 % of the best point of a 0.5-degree grid of the globe
        assert value[row] == pytest.approx(_exhaustive(post, row, objective), rel=1e-5)
        assert abs(value[row] - best) <= 5e-3 * abs(best)
        assert 0 <= cell[row] < len(CENTROIDS)


def test_placer_candidates_are_chosen_when_they_are_best(support):
    post = Posterior(MASSES[:1], support)
    median, _ = post.guess("distance")
    far = np.array([[[-60.0, -60.0]]])
    assert post.guess("distance", far, np.array([[3]]))[0].tolist() == median.tolist()  # a poor extra is ignored
    near = median[:, None, :] + 0.01
    chosen, cell = post.guess("distance", near, np.array([[1]]))
    assert post.expected(chosen)[0] <= post.expected(median)[0] + 1e-6


def _sample(post: Posterior, row: int, n: int, rng) -> np.ndarray:
    """Draws from the posterior of a row: its shaped cells' discs at their training locations, the other cells'
    discs at their centroids, uniform within each disc."""
    sup = post.support
    shaped = set(post.cells[row][post.shaped[row]].tolist())
    centres, radii, weights = [], [], []
    for c in range(len(sup)):
        if c in shaped:
            keep = sup.weights[c] > 0
            centres.append(sup.points[c][keep])
            radii.append(np.full(keep.sum(), sup.point_radius_km[c]))
            weights.append(sup.weights[c][keep] * post.masses[row, c])
        else:
            centres.append(sup.centroids[c:c + 1])
            radii.append([sup.cell_radius_km[c]])
            weights.append([post.masses[row, c]])
    centres, radii, weights = np.concatenate(centres), np.concatenate(radii), np.concatenate(weights)
    pick = rng.choice(len(weights), n, p=weights / weights.sum())
    rho = radii[pick] * np.sqrt(rng.uniform(size=n))
    return np.column_stack(destination_point(centres[pick, 0], centres[pick, 1], rng.uniform(0, 360, n), rho))


def test_p_within_equals_a_monte_carlo_estimate(support):
    rng = np.random.default_rng(1)
    post = Posterior(MASSES, support, PosteriorConfig(shape_cells=2))  # some cells shaped, others as one disc
    points = np.array([[10.0, 10.0], [45.0, 0.0], [0.0, -179.9]])
    p = post.p_within(points)
    assert p.shape == (3, len(RADII_KM)) and np.all(np.diff(p, axis=1) >= -1e-12)
    for row in range(3):
        draws = _sample(post, row, 300_000, rng)
        d = haversine_km(draws[:, 0], draws[:, 1], points[row, 0], points[row, 1])
        mc = np.array([(d < r).mean() for r in RADII_KM])
        np.testing.assert_allclose(p[row], mc, atol=4e-3)


def test_disc_share_is_the_lens_area():
    rng = np.random.default_rng(2)
    a, r = 30.0, 20.0
    pts = rng.uniform(-a, a, (400_000, 2))
    pts = pts[(pts ** 2).sum(1) < a * a]
    for d in (0.0, 5.0, 15.0, 35.0, 49.0, 60.0):
        mc = (((pts - [d, 0.0]) ** 2).sum(1) < r * r).mean()
        assert disc_share(np.array([d]), r, np.array([a]))[0] == pytest.approx(mc, abs=3e-3)
    assert disc_share(np.array([0.0]), 100.0, np.array([a]))[0] == 1.0
    assert disc_share(np.array([0.0]), 3.0, np.array([a]))[0] == pytest.approx((3 / a) ** 2)


def test_credible_regions_hold_q_and_are_minimal(support):
    rng = np.random.default_rng(3)
    masses = rng.dirichlet(np.full(6, 0.4), 200)
    post = Posterior(masses, support)
    for q in (0.5, 0.9, 0.99):
        regions = post.credible(q)
        for row, cells in enumerate(regions.cells):
            held = masses[row, cells].sum()
            assert held >= q - 1e-9 and regions.mass[row] == pytest.approx(held)
            assert np.sort(masses[row])[::-1][:len(cells) - 1].sum() < q  # one cell fewer never holds q
            assert regions.area_km2[row] == pytest.approx(support.areas_km2[cells].sum())


def test_the_support_is_bounded_and_deterministic():
    rng = np.random.default_rng(4)
    latlon = np.column_stack([rng.uniform(-50, 50, 5000), rng.uniform(-100, 100, 5000)])
    cell = (latlon[:, 0] > 0).astype(int)
    a = CellSupport.build(np.array([[-25.0, 0.0], [25.0, 0.0]]), np.full(2, 1e7), latlon, cell, points_per_cell=16)
    b = CellSupport.build(np.array([[-25.0, 0.0], [25.0, 0.0]]), np.full(2, 1e7), latlon, cell, points_per_cell=16)
    assert a.points.shape == (2, 16, 2) and np.array_equal(a.points, b.points)
    np.testing.assert_allclose(a.weights.sum(1), 1.0)
    np.testing.assert_allclose(a.prior, np.bincount(cell) / len(cell))
    # the sample keeps the cell's spread: its points span most of the cell's latitude range
    assert np.ptp(a.points[1, :, 0]) > 35


def test_no_gallery_means_centroids_and_a_clear_refusal_of_p_within():
    support = CellSupport.build(CENTROIDS, np.full(6, 2e5))
    post = Posterior(MASSES, support)
    latlon, cell = post.guess("distance")
    assert {tuple(p) for p in latlon} <= {tuple(c) for c in CENTROIDS}
    with pytest.raises(InputError, match="no gallery.*pigeon refine build"):
        post.p_within(latlon)


def test_coordinate_decimals_follow_the_expected_error():
    assert coordinate_decimals(800.0) == 0 and coordinate_decimals(60.0) == 1
    assert coordinate_decimals(3.0) == 2 and coordinate_decimals(0.01) == 5
    assert coordinate_decimals(float("nan")) == 5
