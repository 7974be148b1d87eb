"""nclab.ufm.convex: the convex program solved by FISTA, against cvxpy and by hand."""

import math

import numpy as np
import pytest
import torch

from nclab.errors import NclabError
from nclab.ufm import solve_convex, ufm_to_convex_lambda
from nclab.ufm.convex import convex_objective


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


@pytest.mark.parametrize(
    "call",
    [
        lambda: solve_convex([5, 5], 0.0),
        lambda: solve_convex([5, 0], 0.1),
    ],
)
def test_bad_input(call):
    with pytest.raises(NclabError):
        call()


def test_ufm_to_convex_lambda_by_hand():
    assert ufm_to_convex_lambda(4e-2, 1e-2) == pytest.approx(2e-2)  # sqrt(4e-4)
    assert ufm_to_convex_lambda(4e-2, 1e-2, half=False) == pytest.approx(4e-2)
    assert ufm_to_convex_lambda(0.0, 1.0) == 0.0
    with pytest.raises(NclabError, match=">= 0"):
        ufm_to_convex_lambda(-1e-3, 1e-3)


def test_convex_objective_by_hand():
    counts = [4, 1]
    # Z = 0, b = 0: every class's cross-entropy is log K, no penalty
    assert convex_objective(torch.zeros(2, 2), torch.zeros(2), counts, 0.3, 0.7) == pytest.approx(math.log(2))
    # a diagonal Z: logits of class k are Z[:, k] + b; Z D^{1/2} = diag(2 z0, z1), nuclear norm 2 z0 + z1
    z0, z1, b = 1.0, 2.0, torch.tensor([0.5, -0.5])
    ce0 = math.log(math.exp(z0 + 0.5) + math.exp(-0.5)) - (z0 + 0.5)
    ce1 = math.log(math.exp(0.5) + math.exp(z1 - 0.5)) - (z1 - 0.5)
    expect = (4 * ce0 + 1 * ce1) / 5 + 0.3 * (2 * z0 + z1) + 0.7 * 0.5
    got = convex_objective(torch.diag(torch.tensor([z0, z1])), b, counts, 0.3, 0.7)
    assert got == pytest.approx(expect, rel=1e-12)


def test_the_solution_satisfies_its_own_objective_and_beats_nearby_points():
    counts, lam, lb = [20, 6, 3], 1e-2, 5e-2
    res = solve_convex(counts, lam, lb)
    assert res.converged and res.objective == pytest.approx(convex_objective(res.Z, res.b, counts, lam, lb))
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # a convex objective: no nearby point is lower than the optimum
        dz = 1e-3 * torch.randn(res.Z.shape, generator=g, dtype=res.Z.dtype)
        db = 1e-3 * torch.randn(res.b.shape, generator=g, dtype=res.b.dtype)
        assert convex_objective(res.Z + dz, res.b + db, counts, lam, lb) >= res.objective - 1e-10
