"""The arithmetic of space alignment (Wang, Gao and Xie, AAAI 2026; papers.md section 8).

Rows are classes: W (K, d) classifier rows, ``targets`` (K, d) unit directions of the (EMA, centred)
class means. Pure functions: the hooks in :mod:`nclab.align.hooks` call them, tests reach them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nclab.errors import ShapeError


def _check(w: torch.Tensor, targets: torch.Tensor) -> None:
    if w.ndim != 2 or w.shape != targets.shape:
        raise ShapeError(
            f"W and targets must both be (K, d), got {tuple(w.shape)} and {tuple(targets.shape)}"
        )


def slerp_toward(w: torch.Tensor, targets: torch.Tensor, fraction: float, threshold: float) -> torch.Tensor:
    """SpA-SLERP: rows with cos(w_k, t_k) <= ``threshold`` rotate along the great circle toward t_k by
    ``fraction`` of the angle between them, keeping ||w_k||; other rows (and zero rows/targets) stay.

    With w^ = w/||w||, theta = angle(w^, t^), u = normalise(t^ - cos(theta) w^):
    w' = ||w|| (cos(f theta) w^ + sin(f theta) u).
    """
    _check(w, targets)
    norm = w.norm(dim=1, keepdim=True)
    wh = w / norm.clamp_min(1e-12)
    th = F.normalize(targets, dim=1)
    cos = (wh * th).sum(1).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    u = th - cos[:, None] * wh
    un = u.norm(dim=1, keepdim=True)
    valid = (norm.squeeze(1) > 0) & (targets.norm(dim=1) > 0) & (cos <= threshold) & (un.squeeze(1) > 1e-12)
    u = u / un.clamp_min(1e-12)
    a = fraction * theta
    new = norm * (torch.cos(a)[:, None] * wh + torch.sin(a)[:, None] * u)
    return torch.where(valid[:, None], new, w)


def project_gradient(
    grad: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, gamma: float
) -> torch.Tensor:
    """SpA-Proj: g_t = g - (g.w^) w^; d = normalise(m^ - (m^.w^) w^); if g_t.d > 0 (a step -g_t turns
    w_k away from its mean) remove it: g_t <- g_t - (g_t.d) d; return (1 - gamma) g_t + gamma g."""
    _check(w, targets)
    if grad.shape != w.shape:
        raise ShapeError(f"grad must have the shape of W {tuple(w.shape)}, got {tuple(grad.shape)}")
    wh = F.normalize(w, dim=1)
    mh = F.normalize(targets, dim=1)
    gt = grad - (grad * wh).sum(1, keepdim=True) * wh
    d = mh - (mh * wh).sum(1, keepdim=True) * wh
    d = F.normalize(d, dim=1)
    comp = (gt * d).sum(1, keepdim=True)
    gt = torch.where(comp > 0, gt - comp * d, gt)
    return (1 - gamma) * gt + gamma * grad


def reg_loss(w: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """SpA-Reg: mean over classes of 1 - cos(w_k, t_k) (uniform, or weighted by ``weights``
    normalised to sum 1); targets are treated as constants by the caller (detach them)."""
    _check(w, targets)
    cos = F.cosine_similarity(w, targets, dim=1)
    if weights is None:
        return (1 - cos).mean()
    wt = weights.to(cos) / weights.sum()
    return ((1 - cos) * wt).sum()


def masked_reg_loss(w: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """SpA-Reg over the rows with a positive weight: sum_k weights_k (1 - cos(w_k, t_k)) / sum weights
    (0 when every weight is 0). Equals :func:`reg_loss` on the selected rows (uniform weights: their
    mean) without selecting them, so a training step needs no host read of which rows they are."""
    _check(w, targets)
    cos = F.cosine_similarity(w, targets, dim=1)
    wt = weights.to(cos)
    return ((1 - cos) * wt).sum() / wt.sum().clamp_min(torch.finfo(cos.dtype).tiny)
