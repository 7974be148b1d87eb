"""nclab.ufm.problem: the UFM and its solvers (gradient descent against the convex optimum, closed-form
gradients, the recorded history, bad inputs)."""

import math

import pytest
import torch

from nclab.errors import NclabError
from nclab.ufm import (
    UFM,
    solve_convex,
    ufm_to_convex_lambda,
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
