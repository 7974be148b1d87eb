"""From a solution to numbers a reader compares with the theory: factors of Z, NC, groups, SELI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from nclab.geometry import seli_distance


def factorize(
    z: torch.Tensor, counts: Sequence[int], lambda_w: float, lambda_h: float, dim: int | None = None
):
    """Balanced factors of the convex solution: W (K x dim) and class features H_c (K x dim) with
    W H_c^T = Z and (lambda_W/2)||W||^2 + (lambda_H/2) sum_k n_k ||h_k||^2 = sqrt(lambda_W lambda_H) ||Z D^{1/2}||_*
    (the equality case of the variational form; see :func:`nclab.ufm.ufm_to_convex_lambda`)."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    k = len(n)
    u, s, vh = torch.linalg.svd(z.double() * n.sqrt(), full_matrices=False)
    ratio = (lambda_h / lambda_w) ** 0.25
    w = ratio * u * s.sqrt()  # (K, K)
    hc = ((s.sqrt()[:, None] * vh) / ratio / n.sqrt()).T  # (K, K): row k = feature of class k
    d = dim or k
    if d > k:
        pad = torch.zeros(k, d - k, dtype=torch.float64)
        w, hc = torch.cat([w, pad], 1), torch.cat([hc, pad], 1)
    return w, hc


def _pair_cos(x: torch.Tensor, idx: list[int]) -> float | None:
    if len(idx) < 2:
        return None
    v = x[idx] / x[idx].norm(dim=1, keepdim=True).clamp_min(1e-300)
    c = v @ v.T
    m = len(idx)
    return float((c.sum() - c.diagonal().sum()) / (m * (m - 1)))


def summarize(w: torch.Tensor, hc: torch.Tensor, counts: Sequence[int]) -> dict[str, Any]:
    """Groups of equal count (largest first): norms of w_k and h_k, pairwise cosines inside each group
    (for the smallest group: the minority-collapse index), and SELI distances."""
    counts = [int(c) for c in counts]
    out: dict[str, Any] = {"groups": []}
    for n in sorted(set(counts), reverse=True):
        idx = [k for k, c in enumerate(counts) if c == n]
        out["groups"].append(
            {
                "count": n,
                "classes": idx,
                "w_norm": float(w[idx].norm(dim=1).mean()),
                "h_norm": float(hc[idx].norm(dim=1).mean()),
                "w_cos": _pair_cos(w, idx),
                "h_cos": _pair_cos(hc, idx),
            }
        )
    if float(w.norm()) > 0 and float(hc.norm()) > 0:
        out["seli"] = seli_distance(w, hc, counts)
    else:
        out["seli"] = None
    return out
