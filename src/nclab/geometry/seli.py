"""SELI: the simplex-encoded-labels interpolation (Thrampoulidis, Kini, Vakilian, Behnia, NeurIPS 2022).

Labels one-hot Y (K x N); simplex-encoded label matrix Zhat = C Y (column i is e_{y_i} - 1/K); thin SVD
Zhat = U L V^T. SELI, up to one global scale: G_W = U L U^T (Gram of the classifier rows, W W^T),
G_H = V L V^T (feature Gram H^T H), logits W H = Zhat. Everything is computed at class level from the
counts: Zhat Zhat^T = C D C with D = diag(n), so G_W = (C D C)^{1/2}; one feature per class gives
G_H = C (C D C)^{+1/2} C = (C D C)^{+1/2}; and the class-level logits are Z = C. For balanced counts
all three are proportional to C (the simplex ETF).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nclab.errors import NclabError, ShapeError
from nclab.geometry.etf import centering_matrix


def sel_matrix(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Zhat = C Y (K x N): column i is e_{y_i} - 1/K."""
    if labels.ndim != 1 or labels.is_floating_point():
        raise ShapeError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ShapeError(f"labels must lie in [0, {num_classes})")
    y = torch.nn.functional.one_hot(labels.long(), num_classes).T.to(torch.float64)  # (K, N)
    return y - 1.0 / num_classes


@dataclass
class SELIGeometry:
    """Class-level SELI targets, each K x K with unit Frobenius norm."""

    G_W: torch.Tensor
    G_H: torch.Tensor
    Z: torch.Tensor


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm()


def _check_counts(counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    n = torch.as_tensor(counts, dtype=torch.float64)
    if n.ndim != 1 or len(n) < 2:
        raise NclabError(f"counts must list at least 2 classes, got {n.tolist()}")
    if (n <= 0).any():
        raise NclabError(f"counts must be positive, got {n.tolist()}")
    return n


def seli_geometry(counts: Sequence[int] | torch.Tensor) -> SELIGeometry:
    """The SELI Gram matrices and logits for the given class counts (no N x N matrices).

    Example:
        >>> g = seli_geometry([5, 5, 5])
        >>> torch.allclose(g.G_W, g.Z) and torch.allclose(g.G_H, g.Z)
        True
    """
    n = _check_counts(counts)
    k = len(n)
    c = centering_matrix(k)
    evals, evecs = torch.linalg.eigh(c @ torch.diag(n) @ c)
    # C diag(n) C with n > 0 has rank exactly K - 1 (null space: the ones vector); keep the K - 1
    # largest eigenvalues rather than thresholding a rounding-level one (eigh sorts ascending)
    keep = torch.arange(k) >= 1
    root = evecs[:, keep] @ torch.diag(evals[keep].sqrt()) @ evecs[:, keep].T
    inv_root = evecs[:, keep] @ torch.diag(evals[keep].rsqrt()) @ evecs[:, keep].T
    return SELIGeometry(G_W=_unit(root), G_H=_unit(inv_root), Z=_unit(c))


def seli_distance(
    weights: torch.Tensor,
    class_means: torch.Tensor,
    counts: Sequence[int] | torch.Tensor,
    *,
    center: bool = False,
) -> dict[str, Any]:
    """Distances || X/||X||_F - X*/||X*||_F ||_F to SELI for X in {G_W, G_H, Z}.

    Args:
        weights: classifier rows W (K, d).
        class_means: class means (K, d), as they are (SELI is the geometry of the UFM without bias).
        counts: training counts (K,).
        center: subtract the count-weighted global mean from the class means first (for models whose
            bias absorbs a common offset of the features).

    Returns:
        ``{"W": ..., "H": ..., "Z": ...}`` floats.
    """
    n = _check_counts(counts)
    k = len(n)
    if weights.ndim != 2 or class_means.shape != weights.shape or weights.shape[0] != k:
        raise ShapeError(
            f"weights and class_means must both be (K={k}, d), got {tuple(weights.shape)} and "
            f"{tuple(class_means.shape)}"
        )
    w = weights.detach().double().cpu()
    m = class_means.detach().double().cpu()
    mt = m - (n[:, None] * m).sum(0) / n.sum() if center else m
    target = seli_geometry(n)
    out = {}
    for key, x, t in (("W", w @ w.T, target.G_W), ("H", mt @ mt.T, target.G_H), ("Z", w @ mt.T, target.Z)):
        out[key] = float((_unit(x) - t).norm())
    return out
