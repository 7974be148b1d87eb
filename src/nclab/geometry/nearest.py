"""The nearest simplex ETF (Markou, Ajanthan and Gould, NeurIPS 2024; papers.md section 6).

Given Y (d x K), centred class means scaled to ||Y||_F = 1, the classifier is the simplex ETF
closest to Y:

    P* = argmin_{P^T P = I_K} ||Y - (1/sqrt(K-1)) P C||_F^2 + (delta/2) ||P - P_prev||_F^2.

Since ||P C||_F^2 = tr(C) and ||P||_F^2 = K are constant on the Stiefel manifold, this is the
orthogonal Procrustes problem max tr(P^T A) with A = (2/sqrt(K-1)) Y C + delta P_prev, whose exact
solution is the polar factor P* = U V^T of the thin SVD A = U S V^T (one SVD, needs d >= K), instead
of the paper's Riemannian trust-region solver.

Without ``prev``, A 1 = 0 and the polar factor is unique only on the complement of the all-ones
direction: nclab completes it with u v^T, v = 1/sqrt(K) and u the first standard basis vector's
component orthogonal to span(U_{K-1}) (normalised; the next basis vector if it vanishes). The
classifier W = sqrt(K/(K-1)) C P*^T does not depend on that completion (C v = 0).

Backward (analytic, not autograd through ``torch.linalg.svd``): for P = U V^T and incoming G = dL/dP,
with M = U^T G V,

    dL/dA = U [(M - M^T)_{ij} / (s_i + s_j)] V^T + (I - U U^T) G V S^+ V^T,

the derivative of the polar factor (e.g. Higham, "Functions of Matrices", 2008, ch. 8). It is exact
when A has full rank K; when A has rank K-1 (no ``prev``) it is the derivative along the directions in
which P* is unique, which is all a loss that uses P only through W = sqrt(K/(K-1)) C P^T sees.
Close singular values are harmless: the denominators are s_i + s_j, not s_i - s_j.
"""

from __future__ import annotations

import math

import torch

from nclab.errors import NclabError, ShapeError
from nclab.geometry.etf import centering_matrix


def _complete(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the singular pair of a (numerically) zero singular value by the documented completion."""
    k = v.shape[-1]
    tol = s[..., :1] * max(u.shape[-2], k) * torch.finfo(s.dtype).eps
    zero = s <= tol  # (..., K)
    if not bool(zero.any()):
        return u, v
    u, v = u.clone(), v.clone()
    flat_u, flat_v, flat_z = u.reshape(-1, *u.shape[-2:]), v.reshape(-1, *v.shape[-2:]), zero.reshape(-1, k)
    ones = torch.full((k,), 1.0 / math.sqrt(k), dtype=u.dtype, device=u.device)
    for b in range(flat_u.shape[0]):
        idx = flat_z[b].nonzero().flatten()
        if len(idx) > 1:
            raise NclabError(
                "nearest_etf: the class means span fewer than K-1 dimensions; the nearest ETF is not unique"
            )
        if len(idx) == 0:
            continue
        j = int(idx[0])
        keep = [i for i in range(k) if i != j]
        ur = flat_u[b][:, keep]
        for e in range(ur.shape[0]):
            cand = -ur @ ur[e]
            cand[e] += 1.0
            if float(cand.norm()) > 1e-6:
                flat_u[b][:, j] = cand / cand.norm()
                break
        vj = ones - flat_v[b][:, keep] @ (flat_v[b][:, keep].T @ ones)
        flat_v[b][:, j] = vj / vj.norm()
    return flat_u.reshape(u.shape), flat_v.reshape(v.shape)


class _PolarFactor(torch.autograd.Function):
    """P = U V^T for A = U S V^T, with the analytic backward documented in the module."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, complete: bool = True) -> torch.Tensor:  # (..., d, K)
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        v = vh.mT
        if complete:
            u, v = _complete(u, v, s)
        ctx.save_for_backward(u, s, v)
        return u @ v.mT

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        u, s, v = ctx.saved_tensors
        m = u.mT @ g @ v  # (..., K, K)
        denom = s[..., :, None] + s[..., None, :]
        skew = m - m.mT
        inner = torch.where(
            denom > 0, skew / denom.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(skew)
        )
        grad = u @ inner @ v.mT
        tol = s[..., :1] * max(u.shape[-2], v.shape[-1]) * torch.finfo(s.dtype).eps
        s_pinv = torch.where(s > tol, 1.0 / s.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))
        gv = g @ v  # (..., d, K)
        perp = gv - u @ (u.mT @ gv)
        grad = grad + (perp * s_pinv[..., None, :]) @ v.mT
        return grad, None


def polar_factor(a: torch.Tensor, *, complete: bool = True) -> torch.Tensor:
    """Orthonormal polar factor U V^T of ``a`` (..., d, K), d >= K, with the analytic backward.

    ``complete=False`` skips the completion of a zero singular pair (which reads the singular values
    on the host); only for ``a`` known to have full rank."""
    return _PolarFactor.apply(a, complete)


def nearest_etf(
    means: torch.Tensor,
    prev: torch.Tensor | None = None,
    delta: float = 1e-3,
    *,
    check_finite: bool = True,
) -> torch.Tensor:
    """Exact minimiser P* (d x K) of the nearest-ETF problem; batched over leading dimensions.

    Args:
        means: Y (..., d, K), centred class means as columns (scaled to unit Frobenius norm by the
            caller, as in the paper; the minimiser does not depend on that scale when ``prev`` is None).
        prev: P_prev (..., d, K) for the proximal term, or None.
        delta: weight of the proximal term (paper: 1e-3).
        check_finite: raise on NaN/Inf in ``means``. ``False`` (with ``prev``) makes the call free of
            host synchronisations, for use every training step on a GPU: the proximal term makes A
            full rank, so no completion of a zero singular pair is needed either.

    Returns:
        P* (..., d, K) with orthonormal columns; differentiable in ``means`` (and ``prev``).

    Example:
        >>> import torch
        >>> y = torch.randn(6, 4, dtype=torch.float64)
        >>> p = nearest_etf(y)
        >>> torch.allclose(p.T @ p, torch.eye(4, dtype=torch.float64))
        True
    """
    if means.ndim < 2:
        raise ShapeError(f"means must be (..., d, K), got shape {tuple(means.shape)}")
    d, k = means.shape[-2:]
    if k < 2:
        raise NclabError(f"nearest_etf needs at least 2 classes, got K={k}")
    if d < k:
        raise NclabError(f"nearest_etf needs d >= K (P has K orthonormal columns in R^d), got d={d}, K={k}")
    if check_finite and not torch.isfinite(means).all():
        raise NclabError("nearest_etf: means contain NaN or Inf")
    c = centering_matrix(k, dtype=means.dtype).to(means.device)
    a = (2.0 / math.sqrt(k - 1)) * means @ c
    if prev is not None:
        if prev.shape != means.shape:
            raise ShapeError(
                f"prev must have the shape of means {tuple(means.shape)}, got {tuple(prev.shape)}"
            )
        a = a + delta * prev
    return polar_factor(a, complete=check_finite or prev is None)


def etf_classifier(p: torch.Tensor) -> torch.Tensor:
    """W = sqrt(K/(K-1)) C P^T (..., K, d): the simplex-ETF classifier of P (d x K), unit rows."""
    k = p.shape[-1]
    c = centering_matrix(k, dtype=p.dtype).to(p.device)
    return math.sqrt(k / (k - 1)) * c @ p.mT
