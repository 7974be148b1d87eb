"""nclab.train.builtin_hooks: mixup (the batch transform and its loss), online NC tracking."""

import json

import numpy as np
import pytest
import torch

from nclab.cli import main
from nclab.errors import ConfigError
from nclab.train import load_config
from nclab.train.loop import mixup_batch
from tests.train.helpers import SMOKE


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
