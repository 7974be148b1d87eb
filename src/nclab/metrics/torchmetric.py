"""``NeuralCollapse``: a :class:`torchmetrics.Metric` over :class:`FeatureStats`.

Its states are the raw float64 moments of :class:`FeatureStats` declared with
``dist_reduce_fx="sum"``, so under DDP ``compute()`` sees the same statistics a single process
would (torchmetrics syncs, computes and restores the local state).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import Metric

from nclab.metrics.functional import STABLE_RCOND, nc_metrics
from nclab.metrics.stats import FeatureStats


class NeuralCollapse(Metric):
    """One-pass NC metrics as a torchmetrics ``Metric``.

    Args:
        num_classes: K.
        dim: feature dimension d.
        classifier: optional module with ``weight`` (K, d) and ``bias``; read at ``compute()``.
        center, counts, allow_missing, many, few, rcond, stable_rcond: as in
            :func:`~nclab.metrics.nc_metrics`.
        validate: check every batch for finite features and labels in range (host synchronisations);
            a training loop that tracks NC online passes ``validate=False`` and then ``update`` makes
            no host synchronisation. The states move with ``.to(device)``.

    ``compute()`` returns the dict of :func:`~nclab.metrics.nc_metrics` without the second-pass keys
    (``nc4`` and ``per_class.nc1`` are None); use :func:`~nclab.metrics.measure` or
    :class:`~nclab.metrics.SecondPass` for those.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        classifier: nn.Module | None = None,
        center: str = "weighted",
        counts: Any = None,
        allow_missing: bool = False,
        many: int = 100,
        few: int = 20,
        rcond: float | None = None,
        stable_rcond: float = STABLE_RCOND,
        validate: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_classes, self.dim = int(num_classes), int(dim)
        self.classifier = classifier
        self.validate = bool(validate)
        self.options = dict(
            center=center,
            counts=counts,
            allow_missing=allow_missing,
            many=many,
            few=few,
            rcond=rcond,
            stable_rcond=stable_rcond,
        )
        f64 = torch.float64
        self.add_state("counts", torch.zeros(num_classes, dtype=f64), dist_reduce_fx="sum")
        self.add_state("sums", torch.zeros(num_classes, dim, dtype=f64), dist_reduce_fx="sum")
        self.add_state("sq_norms", torch.zeros(num_classes, dtype=f64), dist_reduce_fx="sum")
        self.add_state("second", torch.zeros(dim, dim, dtype=f64), dist_reduce_fx="sum")

    def _stats(self) -> FeatureStats:
        st = FeatureStats.__new__(FeatureStats)
        st.num_classes, st.dim = self.num_classes, self.dim
        st.counts, st.sums, st.sq_norms, st.second = self.counts, self.sums, self.sq_norms, self.second
        return st

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:  # type: ignore[override]
        self._stats().update(features, labels, validate=self.validate)

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        w = b = None
        if self.classifier is not None:
            w = self.classifier.weight.detach()
            b = getattr(self.classifier, "bias", None)
            b = b.detach() if b is not None else None
        return nc_metrics(self._stats(), w, b, **self.options)
