import math

import pytest
import torch

from nclab.errors import NclabError
from nclab.geometry import etf_classifier, nearest_etf


def _objective(y, p, prev=None, delta=1e-3):
    k = y.shape[1]
    c = torch.eye(k, dtype=y.dtype) - 1 / k
    f = ((y - p @ c / math.sqrt(k - 1)) ** 2).sum()
    if prev is not None:
        f = f + 0.5 * delta * ((p - prev) ** 2).sum()
    return f


def _riemannian_gd(y, prev=None, delta=1e-3, steps=3000, lr=0.2, seed=0):
    """Brute force: Riemannian gradient descent on the Stiefel manifold with a QR retraction."""
    d, k = y.shape
    g = torch.Generator().manual_seed(seed)
    p, _ = torch.linalg.qr(torch.randn(d, k, dtype=torch.float64, generator=g))
    for _ in range(steps):
        p = p.detach().requires_grad_(True)
        f = _objective(y, p, prev, delta)
        (grad,) = torch.autograd.grad(f, p)
        rg = grad - p @ (p.T @ grad + grad.T @ p) / 2  # tangent projection
        q, r = torch.linalg.qr(p - lr * rg)
        p = q * torch.sign(torch.diagonal(r))
    return p.detach()


@pytest.mark.parametrize("d,k", [(4, 3), (6, 4), (8, 5)])
def test_matches_bruteforce_riemannian_descent(d, k):
    g = torch.Generator().manual_seed(d + k)
    y = torch.randn(d, k, dtype=torch.float64, generator=g)
    y = y / y.norm()
    prev = torch.linalg.qr(torch.randn(d, k, dtype=torch.float64, generator=g))[0]
    p = nearest_etf(y, prev, delta=0.1)
    best = min(
        (_riemannian_gd(y, prev, 0.1, seed=s) for s in range(3)),
        key=lambda q: float(_objective(y, q, prev, 0.1)),
    )
    assert float(_objective(y, p, prev, 0.1)) <= float(_objective(y, best, prev, 0.1)) + 1e-9
    torch.testing.assert_close(p, best, atol=1e-5, rtol=0)
    # without prev the objective value and the classifier are unique
    p0 = nearest_etf(y)
    b0 = _riemannian_gd(y)
    assert float(_objective(y, p0)) == pytest.approx(float(_objective(y, b0)), abs=1e-9)
    torch.testing.assert_close(etf_classifier(p0), etf_classifier(b0), atol=1e-5, rtol=0)


def test_orthonormal_unit_rows_and_deterministic_completion():
    y = torch.randn(7, 4, dtype=torch.float64)
    p = nearest_etf(y)
    torch.testing.assert_close(p.T @ p, torch.eye(4, dtype=torch.float64))
    assert torch.equal(p, nearest_etf(y.clone()))
    w = etf_classifier(p)
    torch.testing.assert_close(w.norm(dim=1), torch.ones(4, dtype=torch.float64))
    cos = (w @ w.T)[0, 1:]
    torch.testing.assert_close(cos, torch.full((3,), -1 / 3, dtype=torch.float64))


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    prev = torch.linalg.qr(torch.randn(5, 3, dtype=torch.float64, generator=g))[0].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: nearest_etf(a, b, delta=0.05), (y, prev))
    # without prev: the classifier W = sqrt(K/(K-1)) C P^T is differentiable
    assert torch.autograd.gradcheck(lambda a: etf_classifier(nearest_etf(a)), (y,))


def test_gradcheck_close_singular_values():
    # Y with nearly equal singular values: the backward has s_i + s_j denominators, so no blow-up
    q = torch.linalg.qr(torch.randn(6, 4, dtype=torch.float64))[0]
    y = (q * torch.tensor([1.0, 1.0 + 1e-9, 1.0 + 2e-9, 0.5], dtype=torch.float64)).requires_grad_(True)
    prev = torch.linalg.qr(torch.randn(6, 4, dtype=torch.float64))[0]
    assert torch.autograd.gradcheck(lambda a: nearest_etf(a, prev, delta=0.1), (y,))


def test_batched_matches_loop():
    y = torch.randn(3, 6, 4, dtype=torch.float64)
    prev = torch.linalg.qr(torch.randn(3, 6, 4, dtype=torch.float64))[0]
    batched = nearest_etf(y, prev)
    for i in range(3):
        torch.testing.assert_close(batched[i], nearest_etf(y[i], prev[i]))


def test_errors():
    with pytest.raises(NclabError, match="d >= K"):
        nearest_etf(torch.randn(3, 5))
    with pytest.raises(NclabError, match="NaN"):
        nearest_etf(torch.full((5, 3), float("nan")))
    with pytest.raises(NclabError):
        nearest_etf(torch.randn(5, 3), torch.randn(5, 4))
