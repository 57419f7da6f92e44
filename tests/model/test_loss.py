"""Haversine label smoothing and the soft cross-entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pigeon.model import geocell_targets, haversine_targets, soft_cross_entropy

KM_PER_DEG = 2 * math.pi * 6378.137 / 360  # one degree of longitude on the equator


def test_targets_match_hand_computed_example():
    # a sample at (0, 0); centroids 0, 1 and 2 degrees east of it on the equator; its true cell is 1
    coords = torch.tensor([[0.0, 0.0]])
    centroids = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    tau = 75.0
    # paper: y_i = exp(-(d_i - d_true) / tau) with d = 0, 111.32, 222.64 km and d_true = 111.32 km
    d = np.array([0.0, KM_PER_DEG, 2 * KM_PER_DEG])
    raw = np.exp(-(d - d[1]) / tau)
    assert raw[1] == 1.0 and raw[0] == pytest.approx(math.exp(KM_PER_DEG / 75))
    expected = raw / raw.sum()  # normalised: about [0.782, 0.177, 0.040]
    got = haversine_targets(coords, centroids, torch.tensor([1]), tau).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(got, [0.7824, 0.1774, 0.0402], atol=2e-4)


def test_targets_are_normalised_and_peak_at_the_nearest_centroid():
    gen = torch.Generator().manual_seed(0)
    coords = torch.rand(50, 2, generator=gen) * torch.tensor([120.0, 340.0]) - torch.tensor([60.0, 170.0])
    centroids = torch.rand(30, 2, generator=gen) * torch.tensor([120.0, 340.0]) - torch.tensor([60.0, 170.0])
    cells = torch.randint(0, 30, (50,), generator=gen)
    y = haversine_targets(coords, centroids, cells, 75.0)
    assert y.shape == (50, 30)
    torch.testing.assert_close(y.sum(1), torch.ones(50))
    nearest = torch.cdist(coords, centroids).argmin(1)  # degrees are fine for a sanity check of far-apart cells
    assert (y.argmax(1) == nearest).float().mean() > 0.9


def test_smaller_tau_is_closer_to_one_hot():
    coords, cells = torch.tensor([[10.0, 10.0]]), torch.tensor([0])
    centroids = torch.tensor([[10.0, 10.0], [10.5, 10.5]])
    peaks = [haversine_targets(coords, centroids, cells, tau)[0, 0].item() for tau in (500, 75, 10)]
    assert peaks[0] < peaks[1] < peaks[2] and peaks[2] > 0.999


def test_one_hot_mode_equals_plain_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(16, 7, generator=gen)
    cells = torch.randint(0, 7, (16,), generator=gen)
    coords, centroids = torch.zeros(16, 2), torch.randn(7, 2, generator=gen)
    y = geocell_targets(coords, centroids, cells, tau_km=None)
    torch.testing.assert_close(soft_cross_entropy(logits, y), F.cross_entropy(logits, cells))


def test_smoothed_loss_is_lower_for_a_near_miss_than_a_far_miss():
    coords = torch.tensor([[0.0, 0.0]])
    centroids = torch.tensor([[0.0, 0.0], [0.0, 0.5], [0.0, 90.0]])
    y = geocell_targets(coords, centroids, torch.tensor([0]), tau_km=75.0)
    near, far = torch.tensor([[0.0, 5.0, 0.0]]), torch.tensor([[0.0, 0.0, 5.0]])
    assert soft_cross_entropy(near, y) < soft_cross_entropy(far, y)
    one_hot = geocell_targets(coords, centroids, torch.tensor([0]), tau_km=None)
    assert soft_cross_entropy(near, one_hot) == pytest.approx(soft_cross_entropy(far, one_hot).item())
