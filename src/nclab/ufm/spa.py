"""Space alignment in the unconstrained-features model: GD on the CE UFM with SpA-SLERP or SpA-Proj
applied to W (Wang, Gao and Xie, AAAI 2026; papers.md section 8), measured against SELI
(Thrampoulidis et al., NeurIPS 2022) and the simplex ETF (Papyan et al., PNAS 2020).

The targets are the current centred class means of H (in a network they are an EMA of batch means;
in the full-batch UFM the exact means are available). SLERP rotates W's rows toward them after each GD
step with strength ``alpha (1 - cos(pi t/T))/2``; Proj edits the W-gradient before the step with
:func:`nclab.align.functional.project_gradient`. Bias-free UFM (SELI is its geometry).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from nclab.align.functional import project_gradient, slerp_toward
from nclab.errors import NclabError
from nclab.geometry import seli_distance
from nclab.ufm.problem import UFM

STRATEGIES = ("none", "slerp", "proj")


def _means(ufm: UFM, H: torch.Tensor) -> torch.Tensor:
    sums = torch.zeros(ufm.num_classes, H.shape[1], dtype=H.dtype).index_add_(0, ufm.labels, H)
    return sums / torch.tensor(ufm.counts, dtype=H.dtype)[:, None]


def _centred_means(ufm: UFM, H: torch.Tensor) -> torch.Tensor:
    means = _means(ufm, H)
    return means - means.mean(0)  # balanced centring: the class-level geometry of SELI and the ETF


def geometry(ufm: UFM, W: torch.Tensor, H: torch.Tensor, minority: Sequence[int]) -> dict[str, float]:
    """Distances and cosines of one iterate.

    - ``seli_Z``: ||Z/||Z||_F - Z*/||Z*||_F||_F for the class logits Z = W M^T against SELI.
    - ``etf_W``: the same for the Gram matrix W W^T against the simplex ETF's (I - 11^T/K).
    - ``align_cos``: mean_k cos(w_k, mu_k - mean_c mu_c).
    - ``minority_cos``: mean pairwise cos of the minority rows of W (1: minority collapse).
    """
    k = ufm.num_classes
    means = _means(ufm, H)
    g = W @ W.T
    etf = torch.eye(k, dtype=W.dtype) - 1.0 / k
    etf_w = float((g / g.norm() - etf / etf.norm()).norm())
    cos = F.cosine_similarity(W, means - means.mean(0), dim=1)
    wn = F.normalize(W[list(minority)], dim=1)
    c = wn @ wn.T
    m = len(minority)
    mcos = float((c.sum() - c.diagonal().sum()) / (m * (m - 1))) if m > 1 else float("nan")
    return {
        "seli_Z": seli_distance(W, means, ufm.counts)["Z"],
        "etf_W": etf_w,
        "align_cos": float(cos.mean()),
        "minority_cos": mcos,
    }


def run_spa_ufm(
    counts: Sequence[int],
    strategy: str,
    *,
    dim: int | None = None,
    lam: float = 1e-3,
    steps: int = 4000,
    lr: float = 1.0,
    alpha: float = 0.02,
    threshold: float = 0.95,
    gamma: float = 0.6,
    record_every: int = 100,
    seed: int = 0,
    init_scale: float = 0.1,
) -> list[dict[str, Any]]:
    """Full-batch GD on the bias-free CE UFM (lambda_W = lambda_H = ``lam``), with ``strategy`` in
    ``none``, ``slerp`` or ``proj`` acting on W; returns the :func:`geometry` every ``record_every``
    steps (and the objective). Minority classes: those with the smallest count."""
    if strategy not in STRATEGIES:
        raise NclabError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    k = len(counts)
    ufm = UFM(counts, dim=dim or k + 2, lambda_w=lam, lambda_h=lam, bias=False)
    W, H, b = ufm.init(seed, init_scale)
    minority = [c for c in range(k) if counts[c] == min(counts)]
    hist = [{"step": 0, "objective": float(ufm.objective(W, H)), **geometry(ufm, W, H, minority)}]
    with torch.no_grad():
        for step in range(1, steps + 1):
            gw, gh = ufm._ce_gradients(W, H, b)
            if strategy == "proj":
                gw = project_gradient(gw, W, _centred_means(ufm, H), gamma)
            W -= lr * gw
            H -= lr * gh
            if strategy == "slerp":
                frac = alpha * (1 - math.cos(math.pi * step / steps)) / 2
                W.copy_(slerp_toward(W, _centred_means(ufm, H), frac, threshold))
            if step % record_every == 0 or step == steps:
                hist.append(
                    {"step": step, "objective": float(ufm.objective(W, H)), **geometry(ufm, W, H, minority)}
                )
    return hist


__all__ = ["STRATEGIES", "geometry", "run_spa_ufm"]
