"""``measure``: every metric over in-memory tensors, in two streaming passes over batches."""

from __future__ import annotations

from typing import Any

import torch

from nclab.metrics.functional import nc_metrics
from nclab.metrics.second_pass import SecondPass
from nclab.metrics.stats import FeatureStats
from nclab.metrics.validation import check_features, check_labels


def measure(
    features: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    center: str = "weighted",
    counts: Any = None,
    num_classes: int | None = None,
    batch_size: int = 32768,
    allow_missing: bool = False,
    many: int = 100,
    few: int = 20,
) -> dict[str, Any]:
    """Neural-collapse metrics of features (N, d) with labels (N,), optionally a classifier.

    Pass 1 gathers :class:`FeatureStats`; pass 2 (:class:`SecondPass`) adds nc4 and per-class nc1.
    Definitions and citations: :mod:`nclab.metrics.functional` and docs/metrics.md.

    Args:
        features: (N, d) floating tensor.
        labels: (N,) integer tensor in [0, K).
        weights: classifier rows W (K, d), optional.
        bias: classifier bias (K,), optional.
        center: ``"weighted"`` or ``"balanced"`` global mean.
        counts: training counts for the many/medium/few groups (default: the label counts).
        num_classes: K (default: ``weights.shape[0]``, else ``len(counts)``, else ``labels.max()+1``).
        batch_size: rows per batch in both passes (memory vs speed).
        allow_missing: measure the present classes when some class has no sample.
        many, few: group thresholds.

    Returns:
        A JSON-serialisable dict.

    Example:
        >>> import torch
        >>> h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]])
        >>> r = measure(h, torch.tensor([0, 0, 1, 1]))  # Sigma_W = 1, Sigma_B = 4 along x: nc1 = 1/4/2
        >>> round(r["nc1"], 6), r["nc2_equinorm"]
        (0.125, 0.0)
    """
    check_features(features)
    if num_classes is None:
        from_labels = int(labels.max()) + 1 if isinstance(labels, torch.Tensor) and labels.numel() else 0
        if weights is not None:
            num_classes = int(weights.shape[0])
        elif counts is not None:
            num_classes = max(len(counts), from_labels)
        else:
            num_classes = from_labels
    check_labels(labels, features.shape[0], num_classes)
    stats = FeatureStats(num_classes, features.shape[1])
    for i in range(0, features.shape[0], batch_size):
        stats.update(features[i : i + batch_size], labels[i : i + batch_size])
    second = SecondPass(stats, weights, bias, center=center, allow_missing=allow_missing)
    for i in range(0, features.shape[0], batch_size):
        second.update(features[i : i + batch_size], labels[i : i + batch_size])
    return nc_metrics(
        stats,
        weights,
        bias,
        center=center,
        counts=counts,
        second=second,
        allow_missing=allow_missing,
        many=many,
        few=few,
    )
