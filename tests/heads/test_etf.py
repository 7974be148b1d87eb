"""Fixed ETF, nearest-ETF and cosine heads (heads/etf.py): geometry, logits by hand, errors."""

import math

import numpy as np
import pytest
import torch

from nclab.errors import ConfigError
from nclab.heads import create_head


def test_fixed_etf_is_a_buffer_with_etf_geometry():
    head = create_head("fixed_etf", 10, 4, bias=True)
    names = [n for n, _ in head.named_parameters()]
    assert names == ["bias"] and "weight" in dict(head.named_buffers())
    w = head.weight.double()
    g = w @ w.T
    assert torch.allclose(g.diagonal(), torch.ones(4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(g[0, 1:], torch.full((3,), -1 / 3, dtype=torch.float64), atol=1e-6)
    with pytest.raises(ConfigError, match="d >= K-1"):
        create_head("fixed_etf", 2, 5)


def test_nearest_etf_head_tracks_means():
    torch.manual_seed(0)
    head = create_head("nearest_etf", 6, 3, tau=5.0)
    centres = torch.randn(3, 6) * 3
    y = torch.tensor([0, 1, 2] * 10)
    for _ in range(20):
        head.update_means(centres[y] + 0.01 * torch.randn(30, 6), y)
    w = head.weight
    mt = centres - centres.mean(0)
    cos = torch.nn.functional.cosine_similarity(w, mt, dim=1)
    assert (cos > 0.8).all()
    assert torch.allclose(w.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose((w @ w.T)[0, 1:], torch.full((2,), -0.5), atol=1e-5)
    with pytest.raises(ConfigError):
        create_head("nearest_etf", 2, 3)


def test_cosine_head_scale():
    head = create_head("cosine", 4, 3, tau=2.0)
    out = head(torch.randn(5, 4))
    assert out.abs().max() <= 2.0 + 1e-6
    assert math.isclose(head.tau, 2.0)


def test_fixed_etf_logits_by_hand():
    head = create_head("fixed_etf", 3, 3, bias=True, scale=2.0, normalize=True)
    with torch.no_grad():
        head.bias.copy_(torch.tensor([0.5, -1.0, 0.0]))
    h = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, -2.0]])
    w = head.weight.double().numpy()
    hn = h.double().numpy() / np.linalg.norm(h.double().numpy(), axis=1, keepdims=True)
    ref = 2.0 * hn @ w.T + np.array([0.5, -1.0, 0.0])
    np.testing.assert_allclose(head(h).detach().double().numpy(), ref, rtol=1e-6, atol=1e-6)
    assert head.diagnostics()["w_norm_mean"] == pytest.approx(1.0, abs=1e-6)


def test_cosine_logits_by_hand_and_bad_tau():
    head = create_head("cosine", 2, 2, tau=3.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    out = head(torch.tensor([[0.0, 5.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 3.0 / math.sqrt(2.0)]]))
    with pytest.raises(ConfigError, match="tau"):
        create_head("cosine", 2, 2, tau=0.0)


def test_nearest_etf_waits_for_every_class_and_reloads():
    head = create_head("nearest_etf", 4, 3)
    start = head.weight.clone()
    head.update_means(torch.randn(4, 4), torch.tensor([0, 0, 1, 1]))  # class 2 not seen: W unchanged
    assert torch.equal(head.weight, start) and head.diagnostics()["classes_seen"] == pytest.approx(2 / 3)
    head.update_means(torch.randn(2, 4), torch.tensor([2, 2]))
    assert not torch.equal(head.weight, start)
    other = create_head("nearest_etf", 4, 3)
    other.load_state_dict(head.state_dict())
    assert torch.equal(other.weight, head.weight) and torch.equal(other.p_prev, head.p_prev)
