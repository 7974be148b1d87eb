"""Flower factories (fed/flower.py): FedAvg aggregation (by samples or by batches), and the strategy
announces each round on stderr (a bar on a terminal)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.common import Code, FitRes, Status, ndarrays_to_parameters  # noqa: E402

from nclab.fed.config import load_fed_config  # noqa: E402
from nclab.fed.flower import NclabStrategy, weighted_average  # noqa: E402
from tests.fed.helpers import Nodes

ROOT = Path(__file__).resolve().parents[2]


def test_rounds_are_announced_and_counted(capsys):
    cfg = load_fed_config(ROOT / "configs" / "recipes" / "fed_synthetic.yaml", ["rounds=3"])
    seen = []
    params = [np.ones(2, np.float32)]
    strategy = NclabStrategy(cfg, params, lambda r, p, m: seen.append(r), round_offset=1)
    fit = strategy.configure_fit(1, ndarrays_to_parameters(params), Nodes(cfg.clients_per_round))
    assert len(fit) == cfg.clients_per_round
    err = capsys.readouterr().err
    assert f"federated rounds: 1/3 round (round 2/3: {cfg.clients_per_round} clients training)" in err
    res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(params), 5, {"partition_id": 0})
    strategy.aggregate_fit(1, [(None, res)], [])
    assert seen == [2] and strategy._bar.n == 2


def test_weighted_average_uses_sample_counts():
    a = [np.array([1.0, 2.0]), np.array([[0.0]])]
    b = [np.array([3.0, 6.0]), np.array([[4.0]])]
    out = weighted_average([(a, 1), (b, 3)])
    np.testing.assert_allclose(out[0], [2.5, 5.0])
    np.testing.assert_allclose(out[1], [[3.0]])


@pytest.mark.parametrize("by", ["samples", "batches"])
def test_the_strategy_weights_clients_by_samples_or_batches(by):
    """aggregate_by=batches (FedGELA's code): the mean weighted by each client's training batches, not its
    samples; against a by-hand weighted mean."""
    cfg = load_fed_config(ROOT / "configs" / "recipes" / "fed_synthetic.yaml", [f"aggregate_by={by}"])
    a = [np.array([1.0, 2.0], np.float32), np.array([3], np.int64)]
    b = [np.array([5.0, -2.0], np.float32), np.array([7], np.int64)]
    got = []
    strategy = NclabStrategy(cfg, a, lambda r, p, m: got.append(p))
    res = [
        (
            None,
            FitRes(Status(Code.OK, ""), ndarrays_to_parameters(t), n, {"partition_id": i, "num_batches": nb}),
        )
        for i, (t, n, nb) in enumerate([(a, 100, 1), (b, 20, 3)])
    ]
    strategy.aggregate_fit(1, res, [])
    wa, wb = (100 / 120, 20 / 120) if by == "samples" else (1 / 4, 3 / 4)
    np.testing.assert_allclose(got[0][0], wa * a[0] + wb * b[0], rtol=1e-6)
    assert got[0][0].dtype == np.float32 and got[0][1].dtype == np.int64  # e.g. num_batches_tracked
    assert got[0][1].tolist() == [int(wa * 3 + wb * 7)]  # integer state: the mean, truncated


def test_a_client_reports_its_training_batches():
    from nclab.fed.flower import NclabClient
    from nclab.fed.local import shared_state
    from nclab.fed.setup import get_setup

    recipes = ROOT / "configs" / "recipes"
    cfg = load_fed_config(
        [recipes / "fed_synthetic.yaml", recipes / "fed_gela_authors.yaml"], ["local.batch_size=16"]
    )
    s = get_setup(cfg)
    params = [t.numpy() for t in shared_state(s.build_model())]
    _, n, metrics = NclabClient(s).fit(params, {"partition_id": 1, "round": 1})
    assert n == len(s.parts[1]) and metrics["num_batches"] == n // 16  # drop_last: full batches only


@pytest.mark.parametrize(
    ("floor", "cap", "missing"), [(0.0, None, 0.0), (1.0, None, 0.0), (1.0, 1.0, 0.0), (0.0, 2.0, 1.0)]
)
def test_a_fedgela_client_trains_with_its_scales(floor, cap, missing, monkeypatch):
    """On long-tailed clients (data.imbalance 20) a client's head is scaled by K n_c / n clipped to
    [floor, cap] for its held classes and by ``missing`` for the others (by hand from its class counts)
    while it trains through the real local loop; the floor changes the trained model."""
    import torch

    from nclab.fed import flower
    from nclab.fed.local import shared_state
    from nclab.fed.setup import get_setup

    options = [f"gela_phi_min={floor}", f"gela_phi_max={'null' if cap is None else cap}"]
    cfg = load_fed_config(
        ROOT / "configs" / "recipes" / "fed_synthetic.yaml",
        ["data.imbalance=20", *options, f"gela_phi_missing={missing}", "local.batch_size=8"],
    )
    s = get_setup(cfg)
    seen = []
    real = flower.local_train

    def spy(model, *args, **kwargs):
        seen.append(model.head.phi.clone())
        return real(model, *args, **kwargs)

    monkeypatch.setattr(flower, "local_train", spy)
    start = [t.numpy() for t in shared_state(s.build_model())]
    for pid in range(cfg.partition.num_clients):
        new, n, _ = flower.NclabClient(s).fit(start, {"partition_id": pid, "round": 1})
        counts = np.asarray(s.client_counts[pid], dtype=float)
        k = len(counts)
        expect = np.where(counts > 0, np.clip(k * counts / counts.sum(), floor, cap), missing)
        np.testing.assert_allclose(seen[-1].numpy(), expect, rtol=1e-6)
        assert any(not np.array_equal(a, b) for a, b in zip(new, start))  # it trained
    held = [p[torch.from_numpy(np.asarray(c) > 0)] for p, c in zip(seen, s.client_counts)]
    assert (floor == 0.0) == any(p.min() < 1 for p in held)  # a held class below 1, which the floor lifts
    assert (cap is None) == any(p.max() > 2 for p in held)  # and one above 2, which a cap of 2 or 1 lowers
    assert any((np.asarray(c) == 0).any() for c in s.client_counts)  # a client misses a class


def test_a_client_computes_with_the_threads_it_is_given():
    """A simulated client's process inherits the parent's OMP_NUM_THREADS (a sweep sets it to the run's
    CPUs); with 2 clients per 2 cores that oversubscribed the cores, so the client sets its own."""
    from types import SimpleNamespace

    import torch

    from nclab.fed.flower import client_for

    cfg = load_fed_config(ROOT / "configs" / "recipes" / "fed_synthetic.yaml")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        client = client_for(SimpleNamespace(run_config={}, node_config={"partition-id": 1}), cfg, threads=1)
        assert torch.get_num_threads() == 1 and client.node_partition == 1
        client_for(SimpleNamespace(run_config={}, node_config={}), cfg)  # a deployment: left as it is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_simulation_gives_each_client_the_threads_ray_reserves_for_it(tmp_path, monkeypatch):
    import flwr.simulation

    from nclab.errors import NclabError
    from nclab.fed import flower, runner

    seen = {}
    real = flower.make_client_app
    monkeypatch.setattr(flower, "make_client_app", lambda cfg, threads=None: seen.setdefault("t", threads)
                        and real(cfg, threads=threads))  # fmt: skip
    monkeypatch.setattr(flwr.simulation, "run_simulation", lambda **kw: seen.update(kw))
    cfg = load_fed_config(ROOT / "configs" / "recipes" / "fed_synthetic.yaml")
    with pytest.raises(NclabError, match="stopped after round 0"):
        runner.run_fed(cfg, tmp_path / "run")
    assert seen["t"] == runner.CLIENT_CPUS == seen["backend_config"]["client_resources"]["num_cpus"]
