"""The geoclip method trained by pigeon: Equal Earth, Fourier features, contrastive training with a GPS queue,
gallery scoring, save/load, resume and DDP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pigeon.errors import InputError
from pigeon.geo import haversine_km, spherical_mean
from pigeon.model.geoclip import (
    SF, ContrastiveTask, EncoderConfig, FourierFeatures, GeoClip, GeoClipConfig, GeoClipTowers, build_geoclip,
    equal_earth, fit_geoclip, read_gallery,
)
from tests.support.distributed import spawn
from tests.support.model import make_synthetic

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = EncoderConfig(sigmas=(1.0, 16.0, 128.0), n_frequencies=64, hidden_dim=128, depth=2, dim=64)


def test_equal_earth_matches_pyproj_and_known_values():
    import pyproj

    rng = np.random.default_rng(0)
    latlon = np.column_stack([rng.uniform(-90, 90, 400), rng.uniform(-180, 180, 400)])
    x, y = pyproj.Proj("+proj=eqearth +R=1")(latlon[:, 1], latlon[:, 0])
    ours = equal_earth(torch.from_numpy(latlon)).numpy() * 180 / SF  # back to the unit sphere
    np.testing.assert_allclose(ours, np.column_stack([x, y]), atol=1e-6)
    corners = equal_earth(torch.tensor([[0.0, 180.0], [90.0, 0.0], [0.0, 0.0]], dtype=torch.float64)).numpy()
    # Equal Earth on the unit sphere: x = 2.70663 at the antimeridian, y = 1.31736 at the pole (Šavrič et al.)
    np.testing.assert_allclose(corners * 180 / SF, [[2.706630, 0], [0, 1.317363], [0, 0]], atol=1e-5)
    assert abs(corners[0, 0] - 1.0) < 1e-5  # GeoCLIP's scale puts the antimeridian at x = 1


def test_fourier_features_follow_their_scale():
    gen = torch.Generator().manual_seed(0)
    fine, coarse = FourierFeatures(256.0, 2000, gen), FourierFeatures(1.0, 2000, gen)
    assert fine.b.std().item() == pytest.approx(256, rel=0.05) and coarse.b.std().item() == pytest.approx(1, rel=0.05)
    assert not fine.b.requires_grad
    v = torch.rand(5, 2)
    out = fine(v)
    assert out.shape == (5, 4000)
    torch.testing.assert_close(out[:, :2000] ** 2 + out[:, 2000:] ** 2, torch.ones(5, 2000))


def test_towers_are_seeded_and_the_scales_are_parameters():
    a, b = GeoClipTowers(8, SMALL), GeoClipTowers(8, SMALL)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    assert len(a.location.capsules) == 3
    assert [c.fourier.b.std().item() for c in a.location.capsules] == pytest.approx([1, 16, 128], rel=0.3)
    two = GeoClipTowers(8, SMALL.replace(sigmas=(2.0, 64.0)))
    assert len(two.location.capsules) == 2
    with pytest.raises(InputError, match="sigmas must be > 0"):
        SMALL.replace(sigmas=(0.0,)).validate()


def test_queue_is_a_ring_of_recent_locations_and_own_coordinates_are_masked():
    towers = GeoClipTowers(4, SMALL)
    task = ContrastiveTask(towers, torch.zeros(5, 2)).train()
    gps = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    x = torch.randn(3, 4)
    loss, stats, n = task({"x": x, "gps": gps})
    assert n == 3 and torch.isfinite(loss)
    torch.testing.assert_close(task.queue[:3], gps)
    assert int(task.queue_ptr) == 3
    task({"x": x, "gps": gps})  # wraps around: slots 3, 4, then 0
    torch.testing.assert_close(task.queue, torch.stack([gps[2], gps[1], gps[2], gps[0], gps[1]]))
    assert int(task.queue_ptr) == 1
    # a queue holding only the image's own location: masked, so its single candidate is certain (else log 6)
    alone = ContrastiveTask(towers, gps[:1].repeat(5, 1)).train()
    assert alone({"x": x[:1], "gps": gps[:1]})[0].item() == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(n=900, seed=1)


@pytest.fixture(scope="module")
def trained(synthetic):
    s = synthetic
    config = GeoClipConfig(encoder=SMALL, epochs=12, batch_size=128, lr=2e-3, device="cpu", patience=None)
    return build_geoclip(s.X[s.train], s.coords[s.train], s.cells[s.train], config,
                         ids=np.array([f"r{i}" for i in s.train]), backbone="random")


def test_training_beats_the_mean_guess_by_far(synthetic, trained):
    s = synthetic
    rows, probs = trained.top_points(s.X[s.test], 5)
    guess = trained.coords[rows[:, 0]]
    km = haversine_km(s.coords[s.test, 0], s.coords[s.test, 1], guess[:, 0], guess[:, 1])
    lat, lon = spherical_mean(*s.coords[s.train].T)
    mean_km = haversine_km(s.coords[s.test, 0], s.coords[s.test, 1], lat, lon)
    assert np.median(km) < 0.15 * np.median(mean_km), (np.median(km), np.median(mean_km))
    assert (np.diff(probs, axis=1) <= 1e-7).all() and ((probs > 0) & (probs <= 1)).all()
    assert trained.config["fit"]["best"]["val_median_km"] < 1500


def test_gallery_is_the_distinct_training_locations_and_its_posterior_sums_to_one(synthetic, trained):
    s = synthetic
    assert len(trained) == len(np.unique(s.coords[s.train], axis=0))
    assert set(trained.gallery.columns) == {"id", "lat", "lon", "cell"}
    rows, probs = trained.top_points(s.X[s.test[:4]], len(trained))
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-4)
    mass = trained.cell_probs(s.X[s.test[:4]], len(s.centroids)).numpy()
    np.testing.assert_allclose(mass.sum(1), 1, rtol=1e-4)
    cells = trained.gallery["cell"].to_numpy()
    np.testing.assert_allclose(mass[0, cells[rows[0, 0]]], probs[0][cells[rows[0]] == cells[rows[0, 0]]].sum(),
                               rtol=1e-4)


def test_save_and_load_give_identical_predictions(synthetic, trained, tmp_path):
    trained.save(tmp_path / "geoclip")
    assert {"config.json", "weights.safetensors", "gallery.parquet", "gallery_features.safetensors",
            "meta.json"} <= {p.name for p in (tmp_path / "geoclip").iterdir()}
    loaded = GeoClip.load(tmp_path / "geoclip")
    X = synthetic.X[synthetic.test]
    for a, b in zip(trained.top_points(X, 5), loaded.top_points(X, 5)):
        np.testing.assert_array_equal(a, b)
    assert loaded.config["train"]["encoder"]["sigmas"] == [1.0, 16.0, 128.0]
    (tmp_path / "geoclip" / "gallery_features.safetensors").unlink()  # encoded again on load: the same features
    np.testing.assert_allclose(GeoClip.load(tmp_path / "geoclip").top_points(X, 5)[1], trained.top_points(X, 5)[1],
                               rtol=1e-5)


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    def callback(record):
        if record["epoch"] == epoch:
            raise _Stop
    return callback


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(synthetic, tmp_path):
    s = synthetic
    X, coords = s.X[s.train[:300]], s.coords[s.train[:300]]
    config = GeoClipConfig(encoder=SMALL, epochs=4, batch_size=64, device="cpu", patience=None)
    whole = fit_geoclip(X, coords, config, out_dir=tmp_path / "whole")
    with pytest.raises(_Stop):
        fit_geoclip(X, coords, config, out_dir=tmp_path / "cut", callbacks=[_stop_after(2)])
    resumed = fit_geoclip(X, coords, config, out_dir=tmp_path / "cut", resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for (name, a), b in zip(whole.towers.state_dict().items(), resumed.towers.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert (tmp_path / "cut" / "train_log.jsonl").is_file() and (tmp_path / "cut" / "curves.png").is_file()


def _ddp_worker(rank: int, X, coords, out) -> None:
    config = GeoClipConfig(encoder=SMALL, epochs=3, batch_size=96, device="cpu", patience=None, queue_size=200)
    fit_geoclip(X, coords, config, out_dir=out)


def test_two_processes_train_what_one_process_trains(synthetic, tmp_path):
    s = synthetic
    X, coords = s.X[s.train[:320]], s.coords[s.train[:320]]  # 288 after the validation hold-out: 3 steps of 96
    spawn(_ddp_worker, 2, X, coords, tmp_path / "two")
    _ddp_worker(0, X, coords, tmp_path / "one")
    one, two = (load_file(str(tmp_path / run / "checkpoint" / "best.safetensors")) for run in ("one", "two"))
    assert set(one) == set(two) and any("queue" in k for k in one)
    for key in one:  # each process scored its half of every batch against all of the batch's locations
        torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-4, msg=key)


def test_a_gallery_file_with_bad_coordinates_names_the_row(tmp_path):
    path = tmp_path / "gallery.csv"
    path.write_text("LAT,LON\n10.5,20.25\n-30,40\n95.0,10\n12,-181\n")
    with pytest.raises(InputError) as info:
        read_gallery(path)
    message = str(info.value)
    assert "row 2" in message and "line 4" in message and "95.0" in message and "row 3" in message
    assert "\n" not in message
    (tmp_path / "ok.csv").write_text("LAT,LON\n10.5,20.25\n-30,40\n")
    np.testing.assert_array_equal(read_gallery(tmp_path / "ok.csv"), [[10.5, 20.25], [-30, 40]])
    (tmp_path / "cols.csv").write_text("x,y\n1,2\n")
    with pytest.raises(InputError, match="missing column"):
        read_gallery(tmp_path / "cols.csv")


def test_an_oversized_gallery_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from pigeon.model.geoclip import _gallery

    monkeypatch.setattr(_gallery, "MAX_GALLERY_POINTS", 3)
    path = tmp_path / "big.csv"
    path.write_text("lat,lon\n" + "".join(f"{i % 80},{i % 170}\n" for i in range(50)))
    monkeypatch.setattr(_gallery, "_CSV_BYTES_PER_POINT", 1)
    with pytest.raises(InputError, match="more than 3 gallery points"):
        read_gallery(path)
