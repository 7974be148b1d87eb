"""nclab.train.build: the learning-rate schedule and the optimizer's weight-decay groups."""

import pytest
import torch

from nclab.train import load_config
from nclab.train.loop import build_optimizer, lr_factor
from tests.train.helpers import SMOKE


def test_lr_schedule_and_weight_decay_groups():
    cfg = load_config(SMOKE, ["sched.warmup_epochs=2", "train.epochs=10", "sched.kind=cosine"])
    assert lr_factor(cfg, 0, 10) == pytest.approx(1 / 20)
    assert lr_factor(cfg, 19, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 20, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 100, 10) == pytest.approx(0.0, abs=1e-12)
    cfg = load_config(SMOKE, ["sched.kind=step", "sched.milestones=[3,6]", "sched.warmup_epochs=0"])
    assert [lr_factor(cfg, e * 10, 10) for e in (0, 3, 6)] == pytest.approx([1.0, 0.1, 0.01])
    cfg = load_config(
        SMOKE, ["optim.weight_decay=1e-3", "optim.head_weight_decay=5e-2", "optim.bias_weight_decay=0"]
    )
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    head = torch.nn.Linear(4, 2)
    opt = build_optimizer(cfg, model, head)
    wds = [g["weight_decay"] for g in opt.param_groups]
    sizes = [len(g["params"]) for g in opt.param_groups]
    assert wds == [1e-3, 5e-2, 0.0] and sizes == [1, 1, 4]


def test_build_modules_shapes_and_seed():
    from nclab.train.build import build_modules
    from tests.train.helpers import train_data

    data = train_data([5, 4, 3], dim=7)
    cfg = load_config(SMOKE, ["model.feature_dim=12", "train.seed=3"])
    model, head = build_modules(cfg, data)
    feats = model(torch.randn(2, 7))
    assert feats.shape == (2, 12) and head(feats).shape == (2, 3)
    again, _ = build_modules(cfg, data)  # seeded by train.seed: the same initial weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    other, _ = build_modules(load_config(SMOKE, ["model.feature_dim=12", "train.seed=4"]), data)
    assert not all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values())
    )


def test_a_federated_head_is_refused_by_nclab_train(tmp_path, capsys):
    """gela_authors' rows act on a projection of the features that NC and SpA would not see: exit 2."""
    from nclab.cli import main

    assert main(["train", str(SMOKE), "head.name=gela_authors", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "federated head" in err and "nclab fed" in err and len(err.strip().splitlines()) == 1
