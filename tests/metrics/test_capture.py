import pytest
import torch
from torch import nn

from nclab.errors import NclabError
from nclab.metrics import capture_features, measure


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))


def test_captures_input_of_last_linear_by_default():
    net = _net()
    x = torch.randn(10, 6)
    with capture_features(net) as cap:
        net(x)
    expect = net[3](net[2](net[1](net[0](x))))
    torch.testing.assert_close(cap.last, expect)
    assert cap.module is net[4]
    net(x)  # hook removed: nothing changes
    assert len(net[4]._forward_pre_hooks) == 0


def test_named_module_keep_all_and_measure():
    net = _net()
    cap = capture_features(net, "2", keep="all")
    xs = [torch.randn(7, 6) for _ in range(3)]
    for x in xs:
        net(x)
    feats = cap.all()
    cap.remove()
    assert feats.shape == (21, 8)
    labels = torch.arange(21) % 3
    res = measure(feats.double(), labels)
    assert res["num_samples"] == 21


def test_capture_errors():
    with pytest.raises(NclabError, match="no nn.Linear"):
        capture_features(nn.Sequential(nn.ReLU()))
    with pytest.raises(NclabError, match="no submodule"):
        capture_features(_net(), "nope")
    cap = capture_features(_net())
    with pytest.raises(NclabError, match="keep='all'"):
        cap.all()
