"""NeuralCollapse (torchmetrics): per batch vs reference, forward, pickling, two gloo ranks == one."""

import os
import pickle
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nclab.metrics import NeuralCollapse, measure
from tests.metrics.reference import long_tailed

KEYS = ["nc1", "nc1_cdnv", "nc2_equinorm", "nc2_etf", "nc3", "nc3_zhu", "nc4_bias"]


def _data():
    h, y, w, b, _ = long_tailed(k=5, d=4, seed=11)
    return torch.tensor(h), torch.tensor(y), torch.tensor(w), torch.tensor(b)


def _linear(w, b):
    lin = torch.nn.Linear(w.shape[1], w.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return lin


def test_updates_equal_measure():
    h, y, w, b = _data()
    m = NeuralCollapse(5, 4, classifier=_linear(w, b))
    for i in range(0, len(y), 9):
        m.update(h[i : i + 9], y[i : i + 9])
    got, ref = m.compute(), measure(h, y, w, b)
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k], rel=1e-9)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.compute()["nc1"] == pytest.approx(got["nc1"], rel=1e-12)
    sd = m.state_dict()
    m.reset()
    assert float(m.counts.sum()) == 0
    assert isinstance(sd, dict)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        h, y, w, b = _data()
        m = NeuralCollapse(5, 4, classifier=_linear(w, b))
        m.update(h[rank::world], y[rank::world])  # each rank sees half the data
        res = m.compute()
        if rank == 0:
            torch.save({k: res[k] for k in KEYS}, out)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_single_process(tmp_path):
    out = str(tmp_path / "res.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    got = torch.load(out)
    h, y, w, b = _data()
    ref = measure(h, y, w, b)
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k], rel=1e-9), k
