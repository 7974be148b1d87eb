"""FedGELA's head (heads/gela.py): the locally scaled fixed ETF and the per-client scales."""

import numpy as np
import pytest
import torch

from nclab.errors import NclabError
from nclab.heads import create_head
from nclab.heads.gela import gela_scales


def _etf(k, d, seed=0):
    # independent construction: sqrt(K/(K-1)) * (I - 11^T/K) P^T with orthonormal P (d x K)
    g = torch.Generator().manual_seed(seed)
    p, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    c = torch.eye(k, dtype=torch.float64) - 1.0 / k
    return (np.sqrt(k / (k - 1)) * c @ p.T).float()


def test_local_head_equals_etf_scaled_by_label_frequency():
    k, d = 5, 8
    counts = [6, 3, 0, 1, 0]
    head = create_head("gela", d, k, tau=2.0, seed=3)
    etf = head.etf
    torch.testing.assert_close(etf @ etf.T, _etf(k, d) @ _etf(k, d).T, atol=1e-5, rtol=0)  # a simplex ETF
    head.set_scales(gela_scales(counts, c=4.0))
    phi = torch.tensor([4.0 * n / 10 for n in counts])
    torch.testing.assert_close(head.weight, torch.diag(phi) @ etf)
    h = torch.randn(7, d)
    expect = 2.0 * (h / h.norm(dim=1, keepdim=True)) @ (torch.diag(phi) @ etf).T
    torch.testing.assert_close(head(h), expect)
    assert torch.all(head(h)[:, [2, 4]] == 0)  # missing classes: logit 0
    assert gela_scales(counts).tolist() == pytest.approx([3.0, 1.5, 0.0, 0.5, 0.0])  # C = K default
    assert list(head.parameters()) == [] and head.bias is None


def test_unscaled_head_is_the_fixed_etf_on_normalised_features():
    """phi = 1: the same logits as the fixed_etf head with normalize and scale = tau, same seed."""
    gela = create_head("gela", 6, 4, tau=10.0, seed=1)
    fixed = create_head("fixed_etf", 6, 4, normalize=True, scale=10.0, seed=1)
    h = torch.randn(5, 6)
    assert torch.equal(gela(h), fixed(h)) and torch.equal(gela.weight, fixed.weight)


def test_bad_scales_and_tau():
    with pytest.raises(NclabError):
        gela_scales([0, 0])
    with pytest.raises(NclabError):
        gela_scales([1, 2], c=0)
    with pytest.raises(NclabError, match="scales must have shape"):
        create_head("gela", 4, 3).set_scales(torch.ones(2))
    with pytest.raises(NclabError, match="tau must be > 0"):
        create_head("gela", 4, 3, tau=0.0)
