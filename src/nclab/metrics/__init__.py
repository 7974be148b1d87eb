"""Measure neural collapse: one-pass statistics, metric functions, a torchmetrics adapter, capture.

Public API: :class:`FeatureStats`, :class:`SecondPass`, :func:`nc_metrics`, :func:`measure`,
:class:`NeuralCollapse`, :func:`capture_features`, :func:`split_groups`; the two-pass path
(:mod:`nclab.metrics.twopass`): :func:`measure_batches`, :class:`ClassSums`, :class:`SpanPass`,
:class:`SpanStats`, :func:`choose_path`, :func:`path_costs`.
"""

from nclab.metrics.capture import capture_features
from nclab.metrics.functional import nc_metrics
from nclab.metrics.groups import split_groups
from nclab.metrics.measure import measure
from nclab.metrics.second_pass import SecondPass
from nclab.metrics.stats import FeatureStats
from nclab.metrics.twopass import ClassSums, SpanPass, SpanStats, choose_path, measure_batches, path_costs


def __getattr__(name: str):  # noqa: ANN202 - NeuralCollapse imports torchmetrics: only on first use
    if name == "NeuralCollapse":
        from nclab.metrics.torchmetric import NeuralCollapse

        return NeuralCollapse
    raise AttributeError(f"module 'nclab.metrics' has no attribute {name!r}")


__all__ = [
    "ClassSums",
    "FeatureStats",
    "NeuralCollapse",
    "SecondPass",
    "SpanPass",
    "SpanStats",
    "capture_features",
    "choose_path",
    "measure",
    "measure_batches",
    "nc_metrics",
    "path_costs",
    "split_groups",
]
