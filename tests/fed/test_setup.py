"""What a federated run derives from its config (fed/setup.py): train's data, preprocessed once; the
partition; the same fresh model on every side; each method's head."""

from pathlib import Path

import pytest
import torch

from nclab.fed.config import load_fed_config
from nclab.fed.setup import build_setup, get_setup
from nclab.heads.etf import FixedETFHead
from nclab.heads.gela import GELAHead
from nclab.train.data_setup import load_data

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "recipes" / "fed_synthetic.yaml"


def test_image_data_are_trains_normalised_once(tmp_path):
    from nclab.data import cifar_lt
    from tests.train.test_config import _tiny_cifar

    _tiny_cifar(tmp_path, "cifar10", 10)
    over = ["data.name=cifar10", f"data.root={tmp_path}", "model.name=cnn_small", "partition.num_clients=5"]
    cfg = load_fed_config(SMOKE, over)
    s = build_setup(cfg)
    raw, ds = load_data(cfg.data, cfg.seed), cifar_lt(tmp_path, "cifar10", 1.0)
    mean, std = torch.tensor(ds.mean)[None, :, None, None], torch.tensor(ds.std)[None, :, None, None]
    for got, x in ((s.data.train_x, raw.train_x), (s.data.test_x, raw.test_x)):
        torch.testing.assert_close(got, (x.float() / 255 - mean) / std)
    assert s.data.mean is None and s.data.counts == raw.counts  # preprocess passes the floats through now


def test_partition_clients_and_test_samples():
    s = get_setup(load_fed_config(SMOKE))
    assert sorted(torch.cat(s.parts).tolist()) == list(range(len(s.data.train_y)))
    for pid, counts in enumerate(s.client_counts):
        x, y = s.client_train(pid)
        assert torch.bincount(y, minlength=s.num_classes).tolist() == counts and len(x) == len(y)
        _, yt = s.client_test(pid)
        assert set(yt.tolist()) == {c for c, n in enumerate(counts) if n > 0}


@pytest.mark.parametrize(
    "method,head", [("fedavg", torch.nn.Linear), ("fedavg_etf", FixedETFHead), ("fedgela", GELAHead)]
)
def test_every_side_builds_the_same_model_with_the_methods_head(method, head):
    s = build_setup(load_fed_config(SMOKE, [f"method={method}", "device=cpu"]))
    a, b = s.build_model(), s.build_model()
    assert isinstance(a.head, head) and a.model.num_features == 8
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
