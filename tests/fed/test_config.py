from pathlib import Path

import pytest

from nclab.errors import ConfigError
from nclab.fed.config import gela_options, load_fed_config
from nclab.heads.gela import gela_scales

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "recipes" / "fed_synthetic.yaml"


def test_every_fed_config_loads():
    recipes = sorted(SMOKE.parent.glob("fed_*.yaml"))
    assert len(recipes) >= 6
    for p in recipes:
        scales = "gela_phi_min" in p.read_text()  # a FedGELA scale fragment: fedgela only
        for method in ("fedavg", "fedavg_etf", "fedprox", "fedgela"):
            if scales and method != "fedgela":
                with pytest.raises(ConfigError, match="changes FedGELA's scales: set method=fedgela"):
                    load_fed_config(p, [f"method={method}"])
                continue
            cfg = load_fed_config(p, [f"method={method}"])
            assert cfg.rounds >= 1 and cfg.clients_per_round <= cfg.partition.num_clients


@pytest.mark.parametrize(
    "override,msg",
    [
        ("method=fedsgd", "method"),
        ("partition.kind=iid", "partition.kind"),
        ("clients_per_round=5", "clients_per_round"),
        ("rounds=0", "rounds"),
        ("eval_every=0", "eval_every must be >= 1"),
        ("device=cuda", "client_gpus"),
        ("client_gpus=-1", "client_gpus"),
        ("round=3", "Valid keys"),
        ("local.lr=fast", "Valid keys"),
        ("data.name=imagenet_lt", "data.name"),
        ("data.augment=true", "data.augment"),
        ("head.name=linear", "fedgela needs a FedGELA head"),
        ("aggregate_by=clients", "aggregate_by must be samples or batches"),
        ("local.grad_clip=-1", "local.grad_clip must be >= 0"),
        ("gela_phi_min=-1", "gela_phi_min must be >= 0"),
        (["method=fedavg", "gela_phi_min=1"], "gela_phi_min changes FedGELA's scales: set method=fedgela"),
        (["method=fedavg_etf", "gela_phi_max=2"], "gela_phi_max changes FedGELA's scales"),
        (["method=fedprox", "gela_phi_missing=1"], "gela_phi_missing changes FedGELA's scales"),
        (["gela_phi_min=2", "gela_phi_max=1"], "gela_phi_max must be > 0 and >= gela_phi_min"),
        ("gela_phi_max=0", "gela_phi_max must be > 0"),
        ("gela_phi_missing=-0.5", "gela_phi_missing must be >= 0"),
        ("data.val_fraction=1.0", "data.val_fraction must be in"),
        ("lr=0.1", "lr moved to local.lr"),
        ("model=mlp", "model moved to model.name"),
    ],
)
def test_bad_fed_config(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_fed_config(SMOKE, override if isinstance(override, list) else [override])


def test_a_config_of_the_flat_schema_names_the_new_keys(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("model: mlp\nlocal_epochs: 2\ndata: {name: synthetic, samples_per_class: 60}\n")
    with pytest.raises(ConfigError) as err:
        load_fed_config(old)
    msg = str(err.value)
    assert "old.yaml" in msg and len(msg.splitlines()) == 1
    for moved in (
        "model moved to model.name",
        "local_epochs moved to local.epochs",
        "data.samples_per_class moved to data.n_max",
    ):
        assert moved in msg


def test_each_method_gets_its_head():
    from nclab.fed.config import method_head

    heads = {
        m: method_head(load_fed_config(SMOKE, [f"method={m}", "seed=3", "tau=4"]))
        for m in ("fedavg", "fedprox", "fedavg_etf", "fedgela")
    }
    assert heads == {
        "fedavg": ("linear", {}),
        "fedprox": ("linear", {}),
        "fedavg_etf": ("fixed_etf", {"normalize": True, "scale": 4.0, "seed": 3}),
        "fedgela": ("gela", {"tau": 4.0, "seed": 3}),
    }
    cfg = load_fed_config(SMOKE, ["method=fedavg", "head.name=cosine", "head.kwargs.tau=8"])
    assert method_head(cfg) == ("cosine", {"tau": 8})


def test_the_authors_fedgela_fragment_sets_head_optimiser_and_aggregation():
    """configs/recipes/fed_gela_authors.yaml: FedGELA as its authors' code runs it (docs/fed.md)."""
    from nclab.fed.config import method_head

    cfg = load_fed_config([SMOKE, SMOKE.parent / "fed_gela_authors.yaml"], ["seed=5"])
    assert cfg.method == "fedgela" and cfg.aggregate_by == "batches"
    loc = cfg.local
    assert (loc.lr, loc.momentum, loc.weight_decay, loc.batch_size) == (0.01, 0.9, 1e-4, 64)
    assert loc.drop_last and loc.grad_clip == 20.0
    assert method_head(cfg) == (
        "gela_authors",
        {"seed": 5, "temperature": 0.2},
    )  # the ETF from the run's seed
    cfg = load_fed_config(
        [SMOKE, SMOKE.parent / "fed_gela_authors.yaml"], ["head.kwargs.seed=1", "head.kwargs.p=6"]
    )
    assert method_head(cfg) == ("gela_authors", {"seed": 1, "temperature": 0.2, "p": 6})
    cpc = load_fed_config([SMOKE.parent / "fed_fmnist_pcdd3.yaml", SMOKE.parent / "fed_gela_cpc.yaml"])
    assert cpc.method == "fedgela" and cpc.gela_c == 3.0 and method_head(cpc)[0] == "gela"
    equal = load_fed_config([SMOKE.parent / "fed_fmnist_lt100_pcdd2.yaml", SMOKE.parent / "fed_gela_equal.yaml"])
    assert (equal.method, equal.gela_phi_min, equal.gela_phi_max, equal.gela_phi_missing) == ("fedgela", 1, 1, 0)
    assert gela_scales([540, 6, 0], *gela_options(equal)).tolist() == [1.0, 1.0, 0.0]  # a head, a tail, a missing
    default = load_fed_config(SMOKE)  # nclab's defaults are unchanged
    assert (default.aggregate_by, default.local.grad_clip, default.local.drop_last) == ("samples", 0.0, False)


def test_cifar_fed_configs_build_and_a_client_trains(tmp_path):
    import numpy as np
    import torch

    from nclab.fed.apps import NclabClient
    from nclab.fed.local import shared_state
    from nclab.fed.setup import build_setup
    from tests.train.test_config import _tiny_cifar

    _tiny_cifar(tmp_path / "data", "cifar10", 10)
    cfg = load_fed_config(
        SMOKE.parent / "fed_cifar10_pcdd2.yaml",
        ["method=fedgela", f"data.root={tmp_path / 'data'}", "local.epochs=1"],
    )
    s = build_setup(cfg)
    assert (
        s.data.train_x.shape[1:] == (3, 32, 32) and s.num_classes == 10 and s.device.type in ("cpu", "cuda")
    )
    assert all(sum(n > 0 for n in c) == 2 for c in s.client_counts)
    params = [t.numpy() for t in shared_state(s.build_model())]
    new, n, metrics = NclabClient(s).fit(params, {"partition_id": 0, "round": 1})
    assert n == len(s.parts[0]) and 0.0 <= metrics["personal_acc"] <= 1.0
    assert any(not np.array_equal(a, b) for a, b in zip(params, new))
    assert torch.isfinite(torch.as_tensor(metrics["train_loss"]))
