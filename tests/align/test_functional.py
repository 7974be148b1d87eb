"""SpA's pure functions (align/functional.py) against closed forms: Shoemake's SLERP, the gradient
projection by hand, the regulariser's value and its finite-difference gradient."""

import math

import numpy as np
import pytest
import torch

from nclab.align import project_gradient, reg_loss, slerp_toward
from nclab.align.functional import masked_reg_loss

g64 = torch.Generator().manual_seed(0)


def _rand(*shape):
    return torch.randn(*shape, dtype=torch.float64, generator=g64)


def _slerp_reference(p0, p1, t):
    """Shoemake's SLERP between unit vectors: sin((1-t)O)/sin O p0 + sin(tO)/sin O p1."""
    om = np.arccos(np.clip(p0 @ p1, -1, 1))
    return np.sin((1 - t) * om) / np.sin(om) * p0 + np.sin(t * om) / np.sin(om) * p1


def test_slerp_matches_great_circle_keeps_norm_and_skips_aligned_rows():
    w = _rand(5, 4) * 3
    t = torch.nn.functional.normalize(_rand(5, 4), dim=1)
    t[4] = torch.nn.functional.normalize(w[4], dim=0)  # already aligned: cos = 1 > threshold
    out = slerp_toward(w, t, 0.3, 0.99)
    torch.testing.assert_close(out.norm(dim=1), w.norm(dim=1))
    for k in range(4):
        wh = (w[k] / w[k].norm()).numpy()
        ref = _slerp_reference(wh, t[k].numpy(), 0.3) * float(w[k].norm())
        np.testing.assert_allclose(out[k].numpy(), ref, atol=1e-10)
        before = math.acos(float(wh @ t[k].numpy()))
        after = math.acos(float(out[k] @ t[k] / out[k].norm()))
        assert after == pytest.approx(0.7 * before, rel=1e-9)
    torch.testing.assert_close(out[4], w[4])
    out2 = slerp_toward(w, t, 0.3, -2.0)  # threshold below every cosine: nothing moves
    torch.testing.assert_close(out2, w)


def test_proj_removes_only_the_anti_aligning_tangential_component():
    w = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    m = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    # row 0: gradient along +y tangentially: a step -g turns w away from m -> removed
    # row 1: gradient along -y: a step -g turns w toward m -> kept
    g = torch.tensor([[0.5, 2.0, 1.0], [0.5, -2.0, 1.0]], dtype=torch.float64)
    gamma = 0.6
    out = project_gradient(g, w, m, gamma)
    gt0 = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # tangential part minus its +y component
    torch.testing.assert_close(out[0], (1 - gamma) * gt0 + gamma * g[0])
    gt1 = torch.tensor([0.0, -2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(out[1], (1 - gamma) * gt1 + gamma * g[1])
    # general rows: after the edit the tangential part never points toward d
    w, m, g = _rand(6, 5), _rand(6, 5), _rand(6, 5)
    out = project_gradient(g, w, m, 0.0)
    wh = torch.nn.functional.normalize(w, dim=1)
    mh = torch.nn.functional.normalize(m, dim=1)
    d = torch.nn.functional.normalize(mh - (mh * wh).sum(1, keepdim=True) * wh, dim=1)
    assert ((out * d).sum(1) <= 1e-12).all()
    assert torch.allclose((out * wh).sum(1), torch.zeros(6, dtype=torch.float64), atol=1e-12)
    torch.testing.assert_close(project_gradient(g, w, m, 1.0), g)


def test_reg_gradient_matches_finite_differences():
    w = _rand(4, 3).requires_grad_(True)
    t = torch.nn.functional.normalize(_rand(4, 3), dim=1)
    wt = torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: reg_loss(x, t), (w,))
    assert torch.autograd.gradcheck(lambda x: reg_loss(x, t, wt), (w,))
    cos = torch.nn.functional.cosine_similarity(w, t, dim=1)
    assert float(reg_loss(w, t)) == pytest.approx(float((1 - cos).mean()))


def test_masked_reg_loss_is_the_weighted_mean_over_the_weighted_rows():
    w = _rand(4, 3)
    t = torch.nn.functional.normalize(_rand(4, 3), dim=1)
    wts = torch.tensor([2.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    cos = [float(w[k] @ t[k] / w[k].norm()) for k in range(4)]
    ref = (2.0 * (1 - cos[0]) + 1.0 * (1 - cos[2])) / 3.0
    assert float(masked_reg_loss(w, t, wts)) == pytest.approx(ref, rel=1e-12)
    assert float(masked_reg_loss(w, t, torch.zeros(4, dtype=torch.float64))) == 0.0
