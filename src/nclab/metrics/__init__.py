"""Measure neural collapse: one-pass statistics, metric functions, a torchmetrics adapter, capture.

Public API: :class:`FeatureStats`, :class:`SecondPass`, :func:`nc_metrics`, :func:`measure`,
:class:`NeuralCollapse`, :func:`capture_features`, :func:`split_groups`.
"""

from nclab.metrics.capture import capture_features
from nclab.metrics.functional import nc_metrics
from nclab.metrics.groups import split_groups
from nclab.metrics.measure import measure
from nclab.metrics.second_pass import SecondPass
from nclab.metrics.stats import FeatureStats
from nclab.metrics.torchmetric import NeuralCollapse

__all__ = [
    "FeatureStats",
    "NeuralCollapse",
    "SecondPass",
    "capture_features",
    "measure",
    "nc_metrics",
    "split_groups",
]
