"""Backbone + head as one module (models/network.py): the pair of outputs, gradients, state names."""

import torch

from nclab.heads import create_head
from nclab.models import create_model
from nclab.models.network import Network


def test_forward_returns_the_features_and_the_head_logits():
    torch.manual_seed(0)
    model = create_model("mlp", in_features=6, feature_dim=4)
    head = create_head("linear", 4, 3)
    net = Network(model, head)
    x = torch.randn(5, 6)
    feats, logits = net(x)
    torch.testing.assert_close(feats, model(x))
    torch.testing.assert_close(logits, feats @ head.weight.T + head.bias)
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    keys = net.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"model", "head"}
    assert net.model is model and net.head is head
