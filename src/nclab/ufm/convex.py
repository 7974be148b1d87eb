"""The convex class-level program of Hong and Ling (2023), papers.md section 5, solved by FISTA.

    min_{Z, b}  (1/N) sum_k n_k [ logsumexp(z_k + b) - (z_k + b)_k ]  +  lam ||Z D^{1/2}||_*  +  lambda_b ||b||^2

Z (K x K) holds in column k the logits of class k's (collapsed) feature, D = diag(n). With NC1 the
CE UFM with bias reduces to it (see :func:`ufm_to_convex_lambda`). Solver: proximal gradient with
Nesterov momentum, adaptive restart (Beck and Teboulle 2009; O'Donoghue and Candes 2015) and an
adaptive step (lengthened by 1.25 each iteration, halved until the quadratic upper bound holds, never
below the safe step) in the variable X~ = Z D^{1/2} / sqrt(N), whose prox is singular-value
soft-thresholding at lam * sqrt(N) * t; the smooth part has a Lipschitz constant at most
1 + 2 lambda_b, so t = 1/(1 + 2 lambda_b) is always safe. Stopping rule: the norm of the gradient mapping (the KKT residual of the
composite problem) ||(x - prox_t(x - t grad f(x)))/t||_F <= tol, reported as ``kkt``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nclab.data.profiles import given
from nclab.errors import NclabError


@dataclass
class ConvexResult:
    """Solution of :func:`solve_convex`."""

    Z: torch.Tensor  # (K, K)
    b: torch.Tensor  # (K,)
    objective: float
    kkt: float  # gradient-mapping norm at the solution
    iterations: int
    converged: bool


def ufm_to_convex_lambda(lambda_w: float, lambda_h: float, *, half: bool = True) -> float:
    """The convex program's lam for UFM weight decays lambda_W, lambda_H.

    Derivation: with NC1 every feature of class k equals h_k, so ||H||_F^2 = ||H_c D^{1/2}||_F^2 for the
    d x K matrix of class features H_c, and Z = W H_c. For any factorisation A B = M,
    min (a/2)||A||_F^2 + (c/2)||B||_F^2 = sqrt(a c) ||M||_* (variational form of the nuclear norm,
    attained by balanced SVD factors; needs d >= K). With A = W, B = H_c D^{1/2}, M = Z D^{1/2}:

        (lambda_W/2)||W||^2 + (lambda_H/2)||H||^2  ->  sqrt(lambda_W lambda_H) ||Z D^{1/2}||_*.

    So lam = sqrt(lambda_W lambda_H) in the (lambda/2)||.||^2 convention used by :class:`UFM`
    (``half=True``); with penalties lambda||.||^2 without the 1/2 (``half=False``) lam = 2 sqrt(lambda_W lambda_H).
    The bias penalty maps as lambda_b(convex) = lambda_b(UFM)/2 in the 1/2 convention.
    """
    if lambda_w < 0 or lambda_h < 0:
        raise NclabError(f"weight decays must be >= 0, got {lambda_w}, {lambda_h}")
    lam = math.sqrt(lambda_w * lambda_h)
    return lam if half else 2.0 * lam


def convex_objective(
    Z: torch.Tensor, b: torch.Tensor, counts: Sequence[int], lam: float, lambda_b: float
) -> float:
    """The program's objective at (Z, b), float64."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    logits = Z.T.double() + b.double()  # row k: logits of class k
    ce = torch.logsumexp(logits, 1) - logits.diagonal()
    nuc = torch.linalg.matrix_norm(Z.double() * n.sqrt(), ord="nuc")
    return float((n * ce).sum() / n.sum() + lam * nuc + lambda_b * (b.double() ** 2).sum())


def _svt(x: torch.Tensor, thr: float) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    return (u * (s - thr).clamp_min(0)) @ vh


def solve_convex(
    counts: Sequence[int],
    lam: float,
    lambda_b: float = 0.0,
    *,
    tol: float = 1e-8,
    max_iter: int = 100_000,
    init: ConvexResult | None = None,
    bias: bool = True,
) -> ConvexResult:
    """Solve the convex program for ``counts`` at ``lam`` (> 0) and ``lambda_b`` (>= 0).

    Args:
        counts: n_k per class.
        lam: nuclear-norm weight.
        lambda_b: bias penalty (no 1/2).
        tol: stop when the gradient-mapping norm is below ``tol``.
        max_iter: iteration cap (``converged`` says whether ``tol`` was met).
        init: warm start (e.g. the solution at a nearby lam).
        bias: with False, b is fixed at 0 (the program of the UFM without bias, as for SELI).

    Example:
        >>> r = solve_convex([50, 50, 10], lam=1e-3)
        >>> r.converged, r.Z.shape
        (True, torch.Size([3, 3]))
    """
    n = torch.as_tensor(given(counts), dtype=torch.float64)
    if not lam > 0:
        raise NclabError(f"lam must be > 0, got {lam}")
    if lambda_b < 0:
        raise NclabError(f"lambda_b must be >= 0, got {lambda_b}")
    k = len(n)
    big_n = float(n.sum())
    scale = (big_n / n).sqrt()  # Z = X~ * sqrt(N / n_k) column-wise
    eye = torch.eye(k, dtype=torch.float64)
    t = 1.0 / (1.0 + 2.0 * lambda_b)
    thr = lam * math.sqrt(big_n) * t

    def grad(x: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        logits = (x * scale).T + b  # (K, K): row k = logits of class k
        p = torch.softmax(logits, 1)
        ce = torch.logsumexp(logits, 1) - logits.diagonal()
        w = n / big_n
        r = (p - eye) * w[:, None]  # (K, K) rows: class k's residual weighted by n_k/N
        gx = (r * scale[:, None]).T  # d/dX~ column k = sqrt(N/n_k) * (n_k/N) (p_k - e_k)
        gb = r.sum(0) + 2 * lambda_b * b if bias else torch.zeros_like(b)
        f = float((w * ce).sum() + lambda_b * (b**2).sum())
        return gx, gb, f

    if init is not None:
        x = init.Z.double() / scale
        b = init.b.double().clone()
    else:
        x = torch.zeros(k, k, dtype=torch.float64)
        b = torch.log(n / big_n) if bias else torch.zeros(k, dtype=torch.float64)
    xm, bm = x.clone(), b.clone()
    theta = 1.0
    step = t
    kkt = float("inf")
    it = 0
    _, _, f_x = grad(x, b)
    prev_obj = f_x + lam * math.sqrt(big_n) * float(torch.linalg.matrix_norm(x, ord="nuc"))
    for it in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        gx, gb, f_y = grad(xm, bm)
        step = min(step * 1.25, 1e6)  # try a longer step, back off until the quadratic bound holds
        while True:
            x_new = _svt(xm - step * gx, lam * math.sqrt(big_n) * step)
            b_new = bm - step * gb
            dx, db = x_new - xm, b_new - bm
            _, _, f_new = grad(x_new, b_new)
            quad = (
                f_y
                + float((gx * dx).sum() + (gb * db).sum())
                + float((dx**2).sum() + (db**2).sum()) / (2 * step)
            )
            if f_new <= quad + 1e-15 * abs(f_y) or step <= t:
                break
            step = max(step / 2, t)
        kkt = math.sqrt(float((dx**2).sum() + (db**2).sum())) / step
        obj = f_new + lam * math.sqrt(big_n) * float(torch.linalg.matrix_norm(x_new, ord="nuc"))
        if obj > prev_obj:  # adaptive restart (O'Donoghue and Candes)
            theta = 1.0
            xm, bm = x.clone(), b.clone()
            continue
        theta_new = (1 + math.sqrt(1 + 4 * theta**2)) / 2
        beta = (theta - 1) / theta_new
        xm = x_new + beta * (x_new - x)
        bm = b_new + beta * (b_new - b)
        x, b, theta, prev_obj = x_new, b_new, theta_new, obj
        if kkt <= tol:
            break
    # KKT residual (gradient mapping with the safe step t) at the final iterate itself
    gx, gb, _ = grad(x, b)
    x_chk = _svt(x - t * gx, thr)
    kkt = math.sqrt(float(((x - x_chk) ** 2).sum() + ((t * gb) ** 2).sum())) / t
    z = x * scale
    return ConvexResult(
        Z=z,
        b=b,
        objective=convex_objective(z, b, n.tolist(), lam, lambda_b),
        kkt=kkt,
        iterations=it,
        converged=kkt <= tol,
    )


def _objective_x(x, b, n, scale, lam, lambda_b, big_n) -> float:
    logits = (x * scale).T + b
    ce = torch.logsumexp(logits, 1) - logits.diagonal()
    nuc = torch.linalg.matrix_norm(x, ord="nuc") * math.sqrt(big_n)
    return float((n * ce).sum() / big_n + lam * nuc + lambda_b * (b**2).sum())
