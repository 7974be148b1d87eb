"""``measure``: every metric over in-memory tensors, by the two-pass or the one-pass path."""

from __future__ import annotations

from typing import Any

import torch

from nclab.errors import DTypeError, ShapeError
from nclab.metrics.functional import nc_metrics
from nclab.metrics.second_pass import SecondPass
from nclab.metrics.stats import FeatureStats
from nclab.metrics.twopass import PATHS, choose_path, measure_batches
from nclab.metrics.validation import check_batch_size, check_counts, check_features, check_labels


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
    rcond: float | None = None,
    stable_rcond: float | None = None,
    path: str = "auto",
) -> dict[str, Any]:
    """Neural-collapse metrics of features (N, d) with labels (N,), optionally a classifier.

    Two paths give the same numbers (docs/metrics.md, "Two passes"):

    - ``"two_pass"``: pass 1 sums each class (one read of X); pass 2 centres each row on its class
      mean and multiplies by [P | W^T] (P spans the centred class means), accumulating Sigma_W inside
      that span (r x r), the per-class residuals and the nc4 decisions
      (:mod:`nclab.metrics.twopass`). Cost: one read plus one N x d x (r + K) product.
    - ``"one_pass"``: :class:`FeatureStats` (the d x d second moment) then :class:`SecondPass`.
    - ``"auto"`` (default): :func:`~nclab.metrics.twopass.choose_path` on the shapes; for the full
      set over features in memory that is the two-pass path (it never costs more, r <= d).

    ``result["path"]`` says which ran. Definitions and citations: :mod:`nclab.metrics.functional`.
    Features on a GPU stay there: per batch nothing is read back to the host.

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
        rcond, stable_rcond: as in :func:`~nclab.metrics.nc_metrics` (``stable_rcond=None``: its
            default).
        path: ``"auto"``, ``"two_pass"`` or ``"one_pass"``.

    Returns:
        A JSON-serialisable dict.

    Example:
        >>> import torch
        >>> h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]])
        >>> r = measure(h, torch.tensor([0, 0, 1, 1]))  # Sigma_W = 1, Sigma_B = 4 along x: nc1 = 1/4/2
        >>> round(r["nc1"], 6), r["nc2_equinorm"], r["path"]
        (0.125, 0.0, 'two_pass')
    """
    if path not in PATHS:
        from nclab.errors import NclabError

        raise NclabError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    batch_size = check_batch_size(batch_size)
    k_source = None
    if num_classes is None:
        from_labels = int(labels.max()) + 1 if isinstance(labels, torch.Tensor) and labels.numel() else 0
        if weights is not None:
            num_classes, k_source = int(weights.shape[0]), "weights.shape[0]"
        elif counts is not None:
            num_classes = max(len(counts), from_labels)
        else:
            num_classes = from_labels
    if counts is not None:
        counts = check_counts(counts, num_classes)
    if path == "auto":
        _check_meta(features)
        path = choose_path(features.shape[1], num_classes, has_weights=weights is not None, center=center)
    if path == "one_pass":
        check_features(features)
        check_labels(labels, features.shape[0], num_classes, k_source=k_source)
        stats = FeatureStats(num_classes, features.shape[1])
        for i in range(0, features.shape[0], batch_size):
            stats.update(features[i : i + batch_size], labels[i : i + batch_size])
        second = SecondPass(stats, weights, bias, center=center, allow_missing=allow_missing, rcond=rcond)
        for i in range(0, features.shape[0], batch_size):
            second.update(features[i : i + batch_size], labels[i : i + batch_size])
        extra = {} if stable_rcond is None else {"stable_rcond": stable_rcond}
        out = nc_metrics(
            stats, weights, bias, center=center, counts=counts, second=second,
            allow_missing=allow_missing, many=many, few=few, rcond=rcond, **extra,
        )  # fmt: skip
        out["path"] = "one_pass"
        return out
    # two-pass: shapes and the label range are checked here once (one read of the labels); the
    # features' finiteness is checked on the class sums (NaN/Inf propagate), precisely only on failure
    _check_meta(features)
    check_labels(labels, features.shape[0], num_classes, k_source=k_source)
    n = features.shape[0]

    def batches():
        return ((features[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, n, batch_size))

    return measure_batches(
        batches, weights, bias, num_classes=num_classes, dim=features.shape[1], center=center,
        counts=counts, allow_missing=allow_missing, many=many, few=few, rcond=rcond,
        stable_rcond=stable_rcond, path="two_pass",
        device=features.device, on_nonfinite=lambda: check_features(features),
    )  # fmt: skip


def _check_meta(features: Any) -> None:
    """Type, rank and dtype of ``features`` (no read of the values)."""
    if not isinstance(features, torch.Tensor):
        raise DTypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2:
        raise ShapeError(f"features must have shape (N, d), got {tuple(features.shape)}")
    if not features.is_floating_point():
        raise DTypeError(f"features must be a floating-point tensor, got {features.dtype}")
