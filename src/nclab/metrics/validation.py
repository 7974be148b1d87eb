"""Input checks shared by the metric entry points (cheap first, precise only on failure)."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from nclab.errors import DTypeError, NclabError, NonFiniteError, ShapeError


def check_features(features: torch.Tensor, name: str = "features") -> torch.Tensor:
    """``features`` must be a floating ``(N, d)`` tensor with finite values."""
    if not isinstance(features, torch.Tensor):
        raise DTypeError(f"{name} must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2:
        raise ShapeError(f"{name} must have shape (N, d), got {tuple(features.shape)}")
    if not features.is_floating_point():
        raise DTypeError(f"{name} must be a floating-point tensor, got {features.dtype}")
    if features.numel() and not torch.isfinite(features.sum()):
        bad = (~torch.isfinite(features)).any(dim=1).nonzero().flatten()
        raise NonFiniteError(
            f"{name} contain NaN or Inf in {len(bad)} row(s), first at row {int(bad[0])}"
            if len(bad)
            else f"{name} overflow when summed: rescale them"
        )
    return features


def check_labels(
    labels: torch.Tensor, num_samples: int, num_classes: int, *, k_source: str | None = None
) -> torch.Tensor:
    """``labels`` must be an integer ``(N,)`` tensor with values in ``[0, num_classes)``.

    ``k_source`` names where ``num_classes`` came from (e.g. ``"weights.shape[0]"``), so that a
    classifier with too few rows is reported as such rather than as a label-encoding problem.
    """
    if not isinstance(labels, torch.Tensor):
        raise DTypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DTypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != num_samples:
        raise ShapeError(
            f"labels must have shape ({num_samples},) to match features, got {tuple(labels.shape)}"
        )
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo >= 0 and hi >= num_classes and k_source is not None:
            raise ShapeError(
                f"{k_source} gives K = {num_classes} classes, but labels go up to {hi}: {k_source} must "
                f"cover every class (at least {hi + 1}), or pass num_classes"
            )
        if lo < 0 or hi >= num_classes:
            raise ShapeError(
                f"labels must lie in [0, {num_classes}), found values in [{lo}, {hi}]: "
                "check num_classes or the label encoding"
            )
    return labels.long()


def check_classifier(
    weights: torch.Tensor | None, bias: torch.Tensor | None, num_classes: int, dim: int
) -> None:
    """Classifier rows ``(K, d)`` and bias ``(K,)``, finite and floating."""
    if weights is not None:
        check_features(weights, "weights")
        if tuple(weights.shape) != (num_classes, dim):
            raise ShapeError(
                f"weights must have shape (K, d) = ({num_classes}, {dim}), got {tuple(weights.shape)}"
            )
    if bias is not None:
        if weights is None:
            raise ShapeError("bias given without weights")
        if not isinstance(bias, torch.Tensor) or bias.ndim != 1 or bias.shape[0] != num_classes:
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
            raise ShapeError(f"bias must have shape ({num_classes},), got {shape}")
        check_features(bias[None], "bias")


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int:
    """``batch_size`` must be a positive integer (rows per batch)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise NclabError(f"{name} must be a positive integer (rows per batch), got {batch_size!r}")
    return int(batch_size)


def check_counts(counts: Any, num_classes: int) -> list[int]:
    """Training counts: ``num_classes`` non-negative integers (a sequence, array or 1-D tensor)."""
    c = counts.tolist() if hasattr(counts, "tolist") else list(counts)
    if any(isinstance(x, (list, tuple)) for x in c):
        raise ShapeError("counts must be one number per class (1-D), got a nested sequence")
    if len(c) != num_classes:
        raise ShapeError(f"counts must have {num_classes} entries (one per class), got {len(c)}")
    for i, x in enumerate(c):
        ok = isinstance(x, numbers.Real) and not isinstance(x, bool) and float(x).is_integer() and x >= 0
        if not ok:
            raise NclabError(
                f"counts must be non-negative integers (training samples per class), got {x!r} for class "
                f"{i}: pass the number of training samples of each class"
            )
    return [int(x) for x in c]
