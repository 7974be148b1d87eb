"""Validation split for model selection, NC metrics every k evaluations, mixup."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nclab.cli import main
from nclab.errors import ConfigError
from nclab.train import load_config
from nclab.train.data_setup import TrainData, carve_validation
from nclab.train.evaluate import _val_accuracy
from nclab.train.loop import mixup_batch

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "recipes" / "synthetic.yaml"


def _data(n_per_class, dim=3):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    x = torch.randn(len(y), dim)
    return TrainData(x, y, x[:0], y[:0], list(n_per_class), ["a"] * len(n_per_class), None, None, "", 1, dim)


def test_carve_validation_is_per_class_disjoint_and_seeded():
    d = carve_validation(_data([50, 20, 3, 2]), 0.1, seed=3)
    assert d.counts == [45, 18, 2, 1]  # round(0.1 n), at least one of each class with >= 2 samples
    assert torch.bincount(d.val_y).tolist() == [5, 2, 1, 1]
    rows_tr = {tuple(r) for r in d.train_x.tolist()}
    assert not rows_tr & {tuple(r) for r in d.val_x.tolist()}
    assert len(rows_tr) + len(d.val_y) == 75
    torch.manual_seed(0)
    again = carve_validation(_data([50, 20, 3, 2]), 0.1, seed=3)
    assert torch.equal(again.val_x, d.val_x)


def test_carve_validation_refuses_to_empty_a_class():
    with pytest.raises(ConfigError, match="val_fraction"):
        carve_validation(_data([10, 2]), 0.9, seed=0)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_config(SMOKE, ["data.val_fraction=1.0"])


def test_val_accuracy_by_hand():
    d = _data([1, 1])
    d.val_x = torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]])
    d.val_y = torch.tensor([0, 0, 0, 1])
    head = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    # predictions: 0, 0, 1, 1 -> class 0: 2/3 right, class 1: 1/1 right
    out = _val_accuracy(nn.Identity(), head, d, torch.device("cpu"), 2, 2)
    assert out["val/acc"] == pytest.approx(3 / 4)
    assert out["val/balanced_acc"] == pytest.approx((2 / 3 + 1) / 2)


def test_run_with_validation_and_sparse_nc(tmp_path):
    r = tmp_path / "r"
    args = ["train", str(SMOKE), "train.epochs=3", "data.val_fraction=0.2", "train.nc_every=2"]
    assert main([*args, "stage2.method=tau_norm", "--run-dir", str(r)]) == 0
    rows = [json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in rows] == [1, 2, 3, 3]
    for x in rows:
        assert 0.0 <= x["val/balanced_acc"] <= 1.0 and 0.0 <= x["val/acc"] <= 1.0
    # NC metrics on the 2nd evaluation and the last epoch only
    assert ["nc/nc1" in x for x in rows[:3]] == [False, True, True]
    counts = json.loads((r / "classes.json").read_text())["counts"]
    cfg = load_config(SMOKE)
    from nclab.data.profiles import exponential

    full = exponential(cfg.data.n_max, cfg.data.num_classes, cfg.data.imbalance)
    assert sum(counts) < sum(full) and all(0 < c <= f for c, f in zip(counts, full))
    assert rows[-1]["stage"] == "tau_norm"


def test_mixup_batch_mixes_inputs_with_one_lambda():
    x = torch.randn(16, 3, 4, 4)
    g = torch.Generator().manual_seed(5)
    xm, (lam, perm) = mixup_batch(x, 0.4, g)
    assert 0.0 <= lam <= 1.0
    assert sorted(perm.tolist()) == list(range(16))
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x[perm])
    # same generator state -> same pairs and lambda (a resumed run mixes the same way)
    xm2, (lam2, perm2) = mixup_batch(x, 0.4, torch.Generator().manual_seed(5))
    assert lam2 == lam and torch.equal(perm2, perm)


def test_mixup_lambda_is_beta_distributed():
    lams = np.array(
        [mixup_batch(torch.zeros(2, 1), 0.5, torch.Generator().manual_seed(s))[1][0] for s in range(4000)]
    )
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 1/8 at a = 0.5
    assert abs(lams.mean() - 0.5) < 0.02
    assert abs(lams.var() - 1 / 8) < 0.01


def test_mixup_run_trains(tmp_path):
    r = tmp_path / "m"
    assert main(["train", str(SMOKE), "train.mixup_alpha=0.2", "--run-dir", str(r)]) == 0
    row = json.loads((r / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["acc/all"] > 0.35, row["acc/all"]  # chance: 1/6


def test_online_nc_equals_the_eval_pass_when_the_model_does_not_move(tmp_path):
    # an MLP without BatchNorm or dropout, lr ~ 0: the training batches' features are the eval features
    base = ["train", str(SMOKE), "train.epochs=1", "optim.lr=1e-12", "sched.warmup_epochs=0"]
    assert main([*base, "--run-dir", str(tmp_path / "eval")]) == 0
    assert main([*base, "train.nc_source=online", "--run-dir", str(tmp_path / "online")]) == 0
    ev, on = (json.loads((tmp_path / d / "metrics.jsonl").read_text()) for d in ("eval", "online"))
    for key in ("nc/nc1", "nc/nc2_etf", "nc/nc3", "nc/num_samples", "loss/train"):
        assert on[key] == pytest.approx(ev[key], rel=1e-4), key
    assert on["nc/per_class/count"] == ev["nc/per_class/count"]


def test_online_nc_refuses_mixup():
    with pytest.raises(ConfigError, match="online"):
        load_config(SMOKE, ["train.nc_source=online", "train.mixup_alpha=0.2"])
