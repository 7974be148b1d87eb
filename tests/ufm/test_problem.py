import math

import numpy as np
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
    ufm_to_convex_lambda,
    zero_solution_threshold,
)


def test_gd_reaches_convex_optimum_imbalanced_with_bias():
    counts, lw, lh, lb = [20, 20, 5, 5], 5e-3, 5e-3, 1e-2
    res = UFM(counts, dim=6, lambda_w=lw, lambda_h=lh, lambda_b=lb).fit(steps=8000, lr=1.0)
    cvx = solve_convex(counts, ufm_to_convex_lambda(lw, lh), lb / 2)
    assert cvx.converged and cvx.kkt < 1e-7
    assert res.objective == pytest.approx(cvx.objective, rel=1e-4)
    torch.testing.assert_close(res.class_logits(), cvx.Z, atol=1e-2, rtol=0)
    # NC1 holds at the optimum: features collapse to their class means
    assert res.history[-1]["nc1"] < 1e-3


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


def test_fista_agrees_with_cvxpy():
    cp = pytest.importorskip("cvxpy")
    n = np.array([30.0, 12.0, 5.0])
    k, lam, lb = 3, 4e-3, 0.05
    z, b = cp.Variable((k, k)), cp.Variable(k)
    obj = sum(n[j] * (cp.log_sum_exp(z[:, j] + b) - z[j, j] - b[j]) for j in range(k)) / n.sum()
    prob = cp.Problem(cp.Minimize(obj + lam * cp.normNuc(z @ np.diag(np.sqrt(n))) + lb * cp.sum_squares(b)))
    prob.solve()
    ours = solve_convex(n.astype(int).tolist(), lam, lb)
    assert ours.objective == pytest.approx(prob.value, rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(ours.Z.numpy(), z.value, atol=2e-3)


def test_history_records_nc_metrics_and_optimizers_run():
    ufm = UFM([8, 8, 2], dim=4, lambda_w=1e-2, lambda_h=1e-2)
    for opt, lr in (("gd", 0.5), ("sgd", 0.05), ("adam", 0.01)):
        res = ufm.fit(steps=60, lr=lr, optimizer=opt, record_every=20)
        assert [h["step"] for h in res.history] == [20, 40, 60]
        assert all("nc1" in h and math.isfinite(h["objective"]) for h in res.history)


@pytest.mark.parametrize(
    "call",
    [
        lambda: UFM([5, 0], dim=2),
        lambda: UFM([5, -1], dim=2),
        lambda: UFM([5], dim=2),
        lambda: UFM([5, 5], dim=2, lambda_w=-1.0),
        lambda: UFM([5, 5], dim=2, normalized=True, tau=0.0),
        lambda: UFM([5, 5], dim=2, loss="hinge"),
        lambda: UFM([5, 5], dim=2).fit(10, 0.1, optimizer="lbfgs"),
        lambda: solve_convex([5, 5], 0.0),
        lambda: solve_convex([5, 0], 0.1),
        lambda: minority_collapse_threshold(10, 2, 2, 1),
        lambda: balanced_ce_minimizer(3, 5, 0.0, 1e-3),
        lambda: normalized_min_loss(3, -1.0),
    ],
)
def test_bad_input(call):
    with pytest.raises(NclabError):
        call()


@pytest.mark.parametrize("bias", [True, False])
def test_closed_form_ce_gradients_match_autograd(bias):
    ufm = UFM([5, 3, 2], dim=4, lambda_w=1e-2, lambda_h=2e-2, lambda_b=3e-2, bias=bias)
    W, H, b = ufm.init(seed=1, scale=0.5)
    b = b + 0.1
    params = [W.requires_grad_(True), H.requires_grad_(True)] + ([b.requires_grad_(True)] if bias else [])
    auto = torch.autograd.grad(ufm.objective(W, H, b), params)
    manual = ufm._ce_gradients(W.detach(), H.detach(), b.detach())
    for a, m in zip(auto, manual):
        torch.testing.assert_close(a, m, rtol=1e-10, atol=1e-12)


def test_fused_gd_step_equals_plain_gradient_step():
    ufm = UFM([5, 3, 2], dim=4, lambda_w=1e-2, lambda_h=2e-2, lambda_b=3e-2)
    W, H, b = ufm.init(seed=2, scale=0.5)
    gw, gh, gb = ufm._ce_gradients(W, H, b)
    expect = (W - 0.3 * gw, H - 0.3 * gh, b - 0.3 * gb)
    ufm._ce_gd_step(W, H, b, 0.3)
    for got, ref in zip((W, H, b), expect):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
