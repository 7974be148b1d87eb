"""nclab.ufm.theory: the closed forms (balanced minimiser, zero-solution and minority-collapse thresholds,
the normalized model's minimum) against the solvers."""

import math

import pytest
import torch

from nclab.errors import NclabError
from nclab.ufm import (
    UFM,
    balanced_ce_minimizer,
    balanced_zero_threshold,
    minority_collapse_threshold,
    normalized_min_loss,
    solve_convex,
    zero_solution_threshold,
)


def test_balanced_closed_form_norms_and_objective():
    k, n, lw, lh = 4, 10, 1e-3, 1e-3
    cf = balanced_ce_minimizer(k, n, lw, lh)
    res = UFM([n] * k, dim=5, lambda_w=lw, lambda_h=lh, lambda_b=1e-2).fit(steps=20000, lr=1.0, tol=1e-13)
    assert res.objective == pytest.approx(cf["objective"], rel=1e-6)
    torch.testing.assert_close(
        res.W.norm(dim=1), torch.full((k,), cf["w_norm"], dtype=torch.float64), rtol=1e-3, atol=0
    )
    torch.testing.assert_close(
        res.H.norm(dim=1), torch.full((k * n,), cf["h_norm"], dtype=torch.float64), rtol=1e-3, atol=0
    )
    # simplex ETF: pairwise cosines -1/(K-1), h_i = sqrt(lw/(n lh)) w_{y_i}, b = 0
    w = res.W / res.W.norm(dim=1, keepdim=True)
    cos = (w @ w.T)[~torch.eye(k, dtype=torch.bool)]
    assert torch.allclose(cos, torch.full_like(cos, -1 / (k - 1)), atol=1e-3)
    torch.testing.assert_close(res.H, math.sqrt(lw / (n * lh)) * res.W[res.labels], atol=1e-3, rtol=0)
    assert float(res.b.abs().max()) < 1e-4


def test_balanced_zero_solution_threshold():
    k, n = 3, 4
    thr = balanced_zero_threshold(k, n)
    lam = 1.2 * thr
    assert balanced_ce_minimizer(k, n, lam, lam)["zero"]
    res = UFM([n] * k, dim=3, lambda_w=lam, lambda_h=lam, lambda_b=1e-2).fit(steps=3000, lr=1.0)
    assert float(res.W.abs().max()) < 1e-4 and res.objective == pytest.approx(math.log(k), rel=1e-6)
    lam = 0.8 * thr
    assert not balanced_ce_minimizer(k, n, lam, lam)["zero"]
    res = UFM([n] * k, dim=3, lambda_w=lam, lambda_h=lam, lambda_b=1e-2).fit(steps=20000, lr=1.0)
    assert res.objective == pytest.approx(balanced_ce_minimizer(k, n, lam, lam)["objective"], rel=1e-5)


def test_normalized_model_reaches_min_loss():
    k, tau = 4, 3.0
    ufm = UFM([6] * k, dim=4, normalized=True, tau=tau)
    res = ufm.fit(steps=3000, lr=2.0)
    assert res.objective == pytest.approx(normalized_min_loss(k, tau), rel=1e-6)
    torch.testing.assert_close(res.W.norm(dim=1), torch.ones(k, dtype=torch.float64))


@pytest.mark.parametrize("n_major,k_major,n_minor,k_minor", [(100, 3, 4, 3), (50, 2, 5, 4)])
def test_minority_collapse_threshold_against_solver(n_major, k_major, n_minor, k_minor):
    counts = [n_major] * k_major + [n_minor] * k_minor
    thr = minority_collapse_threshold(n_major, k_major, n_minor, k_minor)
    zero = zero_solution_threshold(n_major, k_major, n_minor, k_minor)
    assert thr < zero

    def spread(lam):
        z = solve_convex(counts, lam).Z[:, k_major:]
        return float((z - z.mean(1, keepdim=True)).abs().max())

    assert spread(0.97 * thr) > 1e-3
    assert spread(1.03 * thr) < 1e-8
    zb = solve_convex(counts, 0.98 * zero).Z
    assert float(zb.abs().max()) > 1e-6
    assert float(solve_convex(counts, 1.02 * zero).Z.abs().max()) < 1e-10


@pytest.mark.parametrize(
    "call",
    [
        lambda: minority_collapse_threshold(10, 2, 2, 1),
        lambda: balanced_ce_minimizer(3, 5, 0.0, 1e-3),
        lambda: normalized_min_loss(3, -1.0),
    ],
)
def test_bad_input(call):
    with pytest.raises(NclabError):
        call()
