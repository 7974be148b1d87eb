"""FedGELA's head (heads/gela.py): the locally scaled fixed ETF and the per-client scales."""

import numpy as np
import pytest
import torch

from nclab.errors import ConfigError, NclabError
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


def test_a_scale_floor_lifts_held_classes_only():
    """nclab's long-tailed variant: max(C n_c / n, floor) for a held class, 0 for a missing one (by hand:
    counts 90, 9, 1, 0 with C = 4 give 3.6, 0.36, 0.04, 0)."""
    counts = [90, 9, 1, 0]
    assert gela_scales(counts, c=4.0).tolist() == pytest.approx([3.6, 0.36, 0.04, 0.0])
    assert gela_scales(counts, c=4.0, floor=1.0).tolist() == pytest.approx([3.6, 1.0, 1.0, 0.0])
    assert gela_scales(counts, c=4.0, floor=0.3).tolist() == pytest.approx([3.6, 0.36, 0.3, 0.0])
    assert gela_scales([5, 5], floor=1.0).tolist() == [1.0, 1.0]  # already at the floor: unchanged


def test_a_scale_cap_and_a_missing_scale():
    """The cap bounds a held class's scale from above, the missing scale replaces a missing class's 0 (by
    hand: counts 90, 9, 1, 0 with C = 4 give 3.6, 0.36, 0.04, 0)."""
    counts = [90, 9, 1, 0]
    assert gela_scales(counts, c=4.0, cap=2.0).tolist() == pytest.approx([2.0, 0.36, 0.04, 0.0])
    assert gela_scales(counts, c=4.0, missing=0.5).tolist() == pytest.approx([3.6, 0.36, 0.04, 0.5])
    # floor = cap = 1: every held class at 1; with missing = 1 too, the plain ETF's scales
    assert gela_scales(counts, c=4.0, floor=1.0, cap=1.0).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert gela_scales(counts, floor=1.0, cap=1.0, missing=1.0).tolist() == [1.0] * 4


def test_bad_scales_and_tau():
    with pytest.raises(NclabError):
        gela_scales([0, 0])
    with pytest.raises(NclabError):
        gela_scales([1, 2], c=0)
    with pytest.raises(NclabError, match="floor must be >= 0"):
        gela_scales([1, 2], floor=-0.5)
    with pytest.raises(NclabError, match="cap must be > 0 and >= the floor"):
        gela_scales([1, 2], floor=1.0, cap=0.5)
    with pytest.raises(NclabError, match="cap must be > 0"):
        gela_scales([1, 2], cap=0.0)
    with pytest.raises(NclabError, match="missing class must be >= 0"):
        gela_scales([1, 0], missing=-1.0)
    with pytest.raises(NclabError, match="scales must have shape"):
        create_head("gela", 4, 3).set_scales(torch.ones(2))
    with pytest.raises(NclabError, match="tau must be > 0"):
        create_head("gela", 4, 3, tau=0.0)


def _authors_logits_by_hand(head, h, phi, *, train):
    """BN(W2 relu(W1 h + b1) + b2) @ (diag(phi) E)^T / T, BatchNorm written out (batch statistics with the
    biased variance in training, the running ones in eval; eps 1e-5)."""
    l1, l2, bn = head.projection[0], head.projection[2], head.bn
    u = torch.clamp(h.double() @ l1.weight.double().T + l1.bias.double(), min=0)
    u = u @ l2.weight.double().T + l2.bias.double()
    if train:
        mean, var = u.mean(0), u.var(0, unbiased=False)
    else:
        mean, var = bn.running_mean.double(), bn.running_var.double()
    z = (u - mean) / torch.sqrt(var + 1e-5) * bn.weight.double() + bn.bias.double()
    return (z @ (torch.diag(phi.double()) @ head.etf.double()).T / head.temperature).float()


def test_authors_head_logits_by_hand_and_missing_classes_get_zero():
    """gela_authors (FedGELA's code, Fan et al. 2023): projection MLP + BatchNorm, ETF logits over T."""
    k, h_dim, p = 4, 5, 3
    torch.manual_seed(0)
    head = create_head("gela_authors", h_dim, k, p=p, temperature=0.5, seed=2)
    with torch.no_grad():  # a non-trivial affine BatchNorm
        head.bn.weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        head.bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    etf = head.etf
    assert etf.shape == (k, p)
    gram = k / (k - 1) * (torch.eye(k) - 1.0 / k)  # a simplex ETF in p = K-1 dimensions
    torch.testing.assert_close(etf @ etf.T, gram, atol=1e-5, rtol=0)
    counts = [5, 0, 3, 0]
    head.set_scales(gela_scales(counts))
    phi = torch.tensor([4.0 * 5 / 8, 0.0, 4.0 * 3 / 8, 0.0])
    x = torch.randn(6, h_dim)
    head.train()
    out = head(x)
    torch.testing.assert_close(out, _authors_logits_by_hand(head, x, phi, train=True), rtol=1e-5, atol=1e-5)
    assert torch.all(out[:, [1, 3]] == 0)  # missing classes: logit exactly 0
    head.eval()  # running statistics after one update: momentum 0.1 from (0, 1), unbiased variance
    u = head.projection(x).detach()
    torch.testing.assert_close(head.bn.running_mean, 0.1 * u.mean(0))
    torch.testing.assert_close(head.bn.running_var, 0.9 + 0.1 * u.var(0, unbiased=True))
    out = head(x)
    torch.testing.assert_close(out, _authors_logits_by_hand(head, x, phi, train=False), rtol=1e-5, atol=1e-5)
    assert torch.all(out[:, [1, 3]] == 0)
    # every parameter trained (projection and BatchNorm), the ETF and the scales are buffers
    names = {n for n, _ in head.named_parameters()}
    assert names == {
        "projection.0.weight",
        "projection.0.bias",
        "projection.2.weight",
        "projection.2.bias",
        "bn.weight",
        "bn.bias",
    }
    assert {"etf", "phi"} <= {n for n, _ in head.named_buffers()} and head.bias is None


def test_authors_head_with_phi_one_is_the_plain_etf_on_the_projection():
    k, h_dim = 3, 4
    head = create_head("gela_authors", h_dim, k, temperature=0.2, seed=1).eval()
    x = torch.randn(5, h_dim)
    z = head.project(x)
    assert z.shape == (5, h_dim)  # p defaults to the backbone's width
    assert torch.equal(head.weight, head.etf)  # phi = 1: the generic evaluation's classifier
    torch.testing.assert_close(head(x), z @ head.etf.T / 0.2)
    fixed = create_head("fixed_etf", h_dim, k, seed=1)  # the same ETF draw as nclab's fixed head
    assert torch.equal(head.etf, fixed.weight)


def test_bad_authors_head_options():
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        create_head("gela_authors", 4, 3, temperature=0.0)
    with pytest.raises(ConfigError, match="p must be >= K-1"):
        create_head("gela_authors", 8, 5, p=3)
