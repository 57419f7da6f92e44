"""Training on embeddings: it learns, it is seeded, resumable, stops early and checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pigeon.engine import read_checkpoint_state
from pigeon.errors import InputError
from pigeon.geo import haversine_km, spherical_mean
from pigeon.model import TrainConfig, aux_targets, fit_head

FAST = dict(epochs=12, batch_size=64, lr=1e-2, patience=12, device="cpu")


def _median_km(head, syn, rows):
    with torch.no_grad():
        top = head(torch.from_numpy(syn.X[rows]))["geocell"].argmax(1).numpy()
    guess = syn.centroids[top]
    return float(np.median(haversine_km(syn.coords[rows, 0], syn.coords[rows, 1], guess[:, 0], guess[:, 1])))


def _fit(syn, **kw):
    tr = syn.train
    cfg = TrainConfig(**{**FAST, **kw.pop("config", {})})
    return fit_head(syn.X[tr], syn.coords[tr], syn.cells[tr], syn.centroids, config=cfg, **kw)


@pytest.mark.parametrize("config", [{}, {"smoothing": False}, {"hidden_dim": 64}])
def test_model_learns_far_better_than_the_spherical_mean(synthetic, config):
    syn = synthetic
    result = _fit(syn, config=config)
    mean = spherical_mean(*syn.coords[syn.train].T)
    baseline = np.median(haversine_km(syn.coords[syn.test, 0], syn.coords[syn.test, 1], *mean))
    model = _median_km(result.head, syn, syn.test)
    assert model < 0.2 * baseline, (model, baseline)
    assert result.best["val_median_km"] == min(r["val_median_km"] for r in result.history)


def test_auxiliary_heads_learn_their_targets(synthetic):
    syn = synthetic
    aux = aux_targets(syn.frame.iloc[syn.train])
    assert aux.climate is not None and (aux.climate == -1).any() and aux.month is None
    result = _fit(syn, aux=aux.subset(np.arange(len(syn.train))))
    head = result.head
    assert head.climate is not None and head.month is None and head.cfg.regression == ("elevation_m", "temp_mean_c")
    with torch.no_grad():
        out = head(torch.from_numpy(syn.X[syn.test]))
    truth = aux_targets(syn.frame.iloc[syn.test])
    known = truth.climate >= 0
    climate_acc = (out["climate"].argmax(1).numpy()[known] == truth.climate[known]).mean()
    majority = np.bincount(truth.climate[known]).max() / known.sum()
    assert climate_acc > majority + 0.15, (climate_acc, majority)
    predicted = result.standardiser.inverse_transform(out["regression"].numpy())
    for j in range(2):
        err = np.abs(predicted[:, j] - truth.regression[:, j]).mean()
        naive = np.abs(truth.regression[:, j] - np.median(truth.regression[:, j])).mean()
        assert err < 0.6 * naive, (result.standardiser.columns[j], err, naive)


def test_no_aux_config_trains_only_the_geocell_head(synthetic):
    syn = synthetic
    result = _fit(syn, aux=aux_targets(syn.frame.iloc[syn.train]), config={"aux": False, "epochs": 1})
    assert result.head.climate is None and result.head.regression is None and result.standardiser is None


@pytest.mark.parametrize("hidden_dim, shared", [(None, False), (32, True)])
def test_aux_heads_share_only_the_mlp_trunk(synthetic, hidden_dim, shared):
    # linear head on frozen embeddings: the aux losses cannot touch the geocell weights; the MLP trunk is shared
    syn = synthetic
    aux = aux_targets(syn.frame.iloc[syn.train])
    config = {"epochs": 2, "hidden_dim": hidden_dim}
    with_aux, without = _fit(syn, aux=aux, config=config), _fit(syn, aux=aux, config={**config, "aux": False})
    a, b = with_aux.head.geocell.state_dict(), without.head.geocell.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a) != shared


def test_seeded_runs_are_identical(synthetic):
    a = _fit(synthetic, config={"epochs": 3})
    b = _fit(synthetic, config={"epochs": 3})
    for (k, va), vb in zip(a.head.state_dict().items(), b.head.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_the_same_model(synthetic, tmp_path):
    config = {"epochs": 5}
    straight = _fit(synthetic, config=config, out_dir=tmp_path / "a")

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        _fit(synthetic, config=config, out_dir=tmp_path / "b", callbacks=[stop_after_two])
    assert read_checkpoint_state(tmp_path / "b")["epoch"] == 2
    resumed = _fit(synthetic, config=config, out_dir=tmp_path / "b", resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4, 5]
    for (k, va), vb in zip(straight.head.state_dict().items(), resumed.head.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)
    lines = (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5]
    best = load_file(str(tmp_path / "b" / "checkpoint" / "best.safetensors"))
    torch.testing.assert_close(best["head.feature_mean"], resumed.head.feature_mean)


def test_resume_with_other_settings_is_refused(synthetic, tmp_path):
    _fit(synthetic, config={"epochs": 1}, out_dir=tmp_path)
    with pytest.raises(InputError, match="other data or settings"):
        _fit(synthetic, config={"epochs": 2, "tau_km": 10.0}, out_dir=tmp_path, resume=True)


def test_early_stopping_keeps_the_best_epoch(synthetic):
    # a vanishing learning rate cannot improve the validation median for long
    result = _fit(synthetic, config={"lr": 1e-9, "epochs": 30, "patience": 2})
    assert len(result.history) < 30
    assert result.best["epoch"] == len(result.history) - 2


def test_warmup_then_cosine_schedule(synthetic):
    result = _fit(synthetic, config={"epochs": 4, "warmup_epochs": 1.0})
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] == pytest.approx(FAST["lr"], rel=1e-6)  # end of the warm-up epoch: the peak
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3] >= 0


@pytest.mark.parametrize("bad, match", [
    ({"tau_km": 0}, "tau_km"), ({"views": "max"}, "views"), ({"epochs": 0}, "epochs"), ({"dropout": 1.5}, "dropout"),
])
def test_bad_config_is_a_clear_error(synthetic, bad, match):
    with pytest.raises(InputError, match=match):
        _fit(synthetic, config=bad)


def test_bad_arrays_are_clear_errors(synthetic):
    syn = synthetic
    with pytest.raises(InputError, match="differ in length"):
        fit_head(syn.X[:10], syn.coords[:9], syn.cells[:10], syn.centroids)
    with pytest.raises(InputError, match="cell labels"):
        fit_head(syn.X[:10], syn.coords[:10], syn.cells[:10] + 1000, syn.centroids)
    X = syn.X[:10].copy()
    X[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_head(X, syn.coords[:10], syn.cells[:10], syn.centroids)
