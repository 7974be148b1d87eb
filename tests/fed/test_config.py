from pathlib import Path

import pytest

from nclab.errors import ConfigError
from nclab.fed.config import load_fed_config

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "recipes" / "fed_synthetic.yaml"


def test_every_fed_config_loads():
    recipes = sorted(SMOKE.parent.glob("fed_*.yaml"))
    assert len(recipes) >= 6
    for p in recipes:
        for method in ("fedavg", "fedavg_etf", "fedprox", "fedgela"):
            cfg = load_fed_config(p, [f"method={method}"])
            assert cfg.rounds >= 1 and cfg.clients_per_round <= cfg.partition.num_clients


@pytest.mark.parametrize(
    "override,msg",
    [
        ("method=fedsgd", "method"),
        ("partition.kind=iid", "partition.kind"),
        ("clients_per_round=5", "clients_per_round"),
        ("rounds=0", "rounds"),
        ("device=cuda", "client_gpus"),
        ("client_gpus=-1", "client_gpus"),
        ("round=3", "Valid keys"),
        ("lr=fast", "Valid keys"),
    ],
)
def test_bad_fed_config(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_fed_config(SMOKE, [override])


def test_cifar_fed_configs_build_and_a_client_trains(tmp_path):
    import numpy as np
    import torch

    from nclab.fed.apps import NclabClient
    from nclab.fed.setup import build_setup
    from tests.train.test_configs import _tiny_cifar

    _tiny_cifar(tmp_path / "data", "cifar10", 10)
    cfg = load_fed_config(
        SMOKE.parent / "fed_cifar10_pcdd2.yaml",
        ["method=fedgela", f"data.root={tmp_path / 'data'}", "local_epochs=1"],
    )
    s = build_setup(cfg)
    assert s.train_x.shape[1:] == (3, 32, 32) and s.num_classes == 10 and s.device.type in ("cpu", "cuda")
    assert all(sum(n > 0 for n in c) == 2 for c in s.client_counts)
    params = [t.numpy() for t in s.build_model().shared_state()]
    new, n, metrics = NclabClient(s).fit(params, {"partition_id": 0, "round": 1})
    assert n == len(s.parts[0]) and 0.0 <= metrics["personal_acc"] <= 1.0
    assert any(not np.array_equal(a, b) for a, b in zip(params, new))
    assert torch.isfinite(torch.as_tensor(metrics["train_loss"]))
