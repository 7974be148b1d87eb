"""Closed forms of the UFM theory, each derived here and tested against a solver.

1. Balanced CE UFM (Zhu et al., NeurIPS 2021, papers.md section 2). With K classes of n samples,
   N = nK, every global minimiser is a simplex ETF: W = rho_w E, h_i = rho_h e_{y_i} (E the unit-row
   ETF), b = 0 (lambda_b > 0). Logits of a sample are rho_w rho_h (1 on its class, -1/(K-1) elsewhere),
   so with p = rho_w rho_h the objective is

       g(p) = log(1 + (K-1) exp(-p K/(K-1))) + min_{rho_w rho_h = p} (lambda_W K/2) rho_w^2 + (lambda_H N/2) rho_h^2
            = log(1 + (K-1) exp(-p K/(K-1))) + c p,   c = K sqrt(n lambda_W lambda_H)

   (AM-GM, attained at rho_h / rho_w = sqrt(lambda_W / (n lambda_H)), i.e. h_i = sqrt(lambda_W/(n lambda_H)) w_{y_i}).
   g is convex with g'(0) = c - 1: if c >= 1, W = H = 0 is the only minimiser; otherwise g'(p) = 0 gives
   q/(1+q) = r := c (K-1)/K with q = (K-1) exp(-pK/(K-1)), i.e. p = ((K-1)/K) log((K-1)(1-r)/r), and
   rho_w^2 = p sqrt(n lambda_H / lambda_W), rho_h^2 = p sqrt(lambda_W / (n lambda_H)).

2. Normalised UFM (Yaras et al., NeurIPS 2022, papers.md section 4): at the minimiser h_i = w_{y_i} and
   W is a unit simplex ETF, so the logits are tau (1, -1/(K-1), ...) and the minimum loss is
   log(1 + (K-1) exp(-tau K/(K-1))) (needs d >= K-1).

3. Minority collapse in the convex program (Hong and Ling 2023, papers.md section 5). Let a group of
   k_g >= 2 classes share the count n_g. By convexity and symmetry the optimum has, on the group's
   contrast space {v : supp v in group, sum v = 0}, Z v = alpha_g v, so X = Z D^{1/2} has the singular
   value |alpha_g| sqrt(n_g) with multiplicity k_g - 1, separately from the rest. Moving alpha_g with
   the group's mean logit fixed changes each class-k loss (k in the group) at alpha_g = 0 by
   -(k_g - 1)/k_g, whatever the other logits (the group's softmax weights are equal there). So
   alpha_g = 0 (the group's columns of Z coincide: minority collapse) is optimal iff

       (k_g n_g / N) (k_g - 1)/k_g <= lam (k_g - 1) sqrt(n_g)   <=>   lam >= sqrt(n_g) / N,

   with N = sum_k n_k (our derivation, checked against the solver). For two clusters the minority
   threshold is sqrt(n_minor)/N and the majority one sqrt(n_major)/N.
   Z = 0 is optimal iff the gradient of the smooth part at (Z = 0, b*) has spectral norm <= lam in the
   variable X = Z D^{1/2}: its column k is (sqrt(n_k)/N)(softmax(b*) - e_k), where b* minimises the
   program at Z = 0 (for lambda_b = 0, softmax(b*) = n/N). That spectral norm is the zero-solution
   threshold; collapse is visible only for sqrt(n_g)/N below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nclab.data.profiles import given
from nclab.errors import NclabError


def _check_lams(lambda_w: float, lambda_h: float) -> None:
    if not (lambda_w > 0 and lambda_h > 0):
        raise NclabError(f"lambda_w and lambda_h must be > 0, got {lambda_w}, {lambda_h}")


def balanced_ce_minimizer(
    num_classes: int, n: int, lambda_w: float, lambda_h: float
) -> dict[str, float | bool]:
    """Norms and objective of the balanced CE UFM minimiser (Zhu et al. 2021), bias-free optimum.

    Returns:
        ``w_norm`` (each ||w_k||), ``h_norm`` (each ||h_i||), ``objective``, ``zero`` (True when
        W = H = 0 is the only minimiser, i.e. K sqrt(n lambda_W lambda_H) >= 1), ``product`` p.

    Example:
        >>> r = balanced_ce_minimizer(4, 10, 1e-3, 1e-3)
        >>> r["zero"], round(r["h_norm"] / r["w_norm"], 6) == round((1e-3 / (10 * 1e-3)) ** 0.5, 6)
        (False, True)
    """
    if num_classes < 2 or n < 1:
        raise NclabError(f"need K >= 2 classes and n >= 1 samples per class, got K={num_classes}, n={n}")
    _check_lams(lambda_w, lambda_h)
    k = num_classes
    c = k * math.sqrt(n * lambda_w * lambda_h)
    if c >= 1.0:
        return {"w_norm": 0.0, "h_norm": 0.0, "objective": math.log(k), "zero": True, "product": 0.0}
    r = c * (k - 1) / k
    p = (k - 1) / k * math.log((k - 1) * (1 - r) / r)
    obj = math.log1p((k - 1) * math.exp(-p * k / (k - 1))) + c * p
    return {
        "w_norm": math.sqrt(p * math.sqrt(n * lambda_h / lambda_w)),
        "h_norm": math.sqrt(p * math.sqrt(lambda_w / (n * lambda_h))),
        "objective": obj,
        "zero": False,
        "product": p,
    }


def balanced_zero_threshold(num_classes: int, n: int) -> float:
    """The value of sqrt(lambda_W lambda_H) from which W = H = 0 is the only minimiser: 1/(K sqrt(n))."""
    return 1.0 / (num_classes * math.sqrt(n))


def normalized_min_loss(num_classes: int, tau: float) -> float:
    """Minimum of (1/N) sum CE(tau W h_i, y_i) over unit-norm W, H (Yaras et al. 2022)."""
    if num_classes < 2:
        raise NclabError("need at least 2 classes")
    if not tau > 0:
        raise NclabError(f"tau must be > 0, got {tau}")
    k = num_classes
    return math.log1p((k - 1) * math.exp(-tau * k / (k - 1)))


def _two_cluster_counts(n_major: int, k_major: int, n_minor: int, k_minor: int) -> list[int]:
    for name, v in (("n_major", n_major), ("k_major", k_major), ("n_minor", n_minor), ("k_minor", k_minor)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise NclabError(f"{name} must be a positive integer, got {v!r}")
    return [int(n_major)] * int(k_major) + [int(n_minor)] * int(k_minor)


def group_collapse_threshold(n_group: int, total: int) -> float:
    """lam above which a group of >= 2 classes with n_group samples each collapses: sqrt(n_g)/N."""
    return math.sqrt(n_group) / total


def minority_collapse_threshold(n_major: int, k_major: int, n_minor: int, k_minor: int) -> float:
    """Smallest lam at which the k_minor minority columns of Z coincide: sqrt(n_minor)/N.

    Meaningful when ``k_minor >= 2`` and the value is below :func:`zero_solution_threshold` (else the
    whole Z is 0 first). See the module docstring for the derivation.

    Example:
        >>> round(minority_collapse_threshold(100, 5, 4, 5), 6)  # sqrt(4) / 520
        0.003846
    """
    counts = _two_cluster_counts(n_major, k_major, n_minor, k_minor)
    if k_minor < 2:
        raise NclabError("minority collapse needs at least 2 minority classes")
    return group_collapse_threshold(n_minor, sum(counts))


def optimal_bias_at_zero(counts: Sequence[int], lambda_b: float = 0.0) -> torch.Tensor:
    """b* minimising (1/N) sum_k n_k (lse(b) - b_k) + lambda_b ||b||^2 (Newton's method)."""
    n = torch.as_tensor(given(counts), dtype=torch.float64)
    pi = n / n.sum()
    if lambda_b == 0:
        return torch.log(pi)
    b = torch.zeros_like(pi)
    for _ in range(100):
        p = torch.softmax(b, 0)
        g = p - pi + 2 * lambda_b * b
        h = torch.diag(p) - torch.outer(p, p) + 2 * lambda_b * torch.eye(len(n), dtype=torch.float64)
        step = torch.linalg.solve(h, g)
        b = b - step
        if float(step.abs().max()) < 1e-15:
            break
    return b


def zero_threshold(counts: Sequence[int], lambda_b: float = 0.0) -> float:
    """lam from which Z = 0 is optimal in the convex program for any counts (module docstring)."""
    n = torch.as_tensor(given(counts), dtype=torch.float64)
    big_n = float(n.sum())
    p = torch.softmax(optimal_bias_at_zero(counts, lambda_b), 0)
    k = len(n)
    g = (p[:, None] - torch.eye(k, dtype=torch.float64)) * (n.sqrt() / big_n)[None, :]
    return float(torch.linalg.matrix_norm(g, ord=2))


def zero_solution_threshold(
    n_major: int, k_major: int, n_minor: int, k_minor: int, lambda_b: float = 0.0
) -> float:
    """lam from which Z = 0 is the solution, for two clusters (see :func:`zero_threshold`)."""
    return zero_threshold(_two_cluster_counts(n_major, k_major, n_minor, k_minor), lambda_b)
