"""Flower factories (fed/flower.py): FedAvg aggregation, and the strategy announces each round on stderr
(a bar on a terminal)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.common import Code, FitRes, Status, ndarrays_to_parameters  # noqa: E402

from nclab.fed.config import load_fed_config  # noqa: E402
from nclab.fed.flower import NclabStrategy, weighted_average  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class _Clients:
    def __init__(self, n):
        self.nodes = {str(i): type("Node", (), {"cid": str(i)})() for i in range(n)}

    def wait_for(self, n, timeout):
        return True

    def all(self):
        return self.nodes


def test_rounds_are_announced_and_counted(capsys):
    cfg = load_fed_config(ROOT / "configs" / "recipes" / "fed_synthetic.yaml", ["rounds=3"])
    seen = []
    params = [np.ones(2, np.float32)]
    strategy = NclabStrategy(cfg, params, lambda r, p, m: seen.append(r), round_offset=1)
    fit = strategy.configure_fit(1, ndarrays_to_parameters(params), _Clients(cfg.clients_per_round))
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
