"""Losses for long-tailed training. Each takes the class counts at construction.

``create_loss(name, counts, **params)`` returns an ``nn.Module`` called as ``loss(logits, targets)``
(mean over the batch). Losses with an epoch-dependent schedule (DRW) expose ``set_epoch(epoch)``.
Register with ``@register_loss``.
"""

from nclab.losses import longtail as _longtail  # noqa: F401  (registers its entries)
from nclab.losses.base import LOSSES, CrossEntropy, ce, create_loss, list_losses, register_loss
from nclab.losses.longtail import class_balanced_weights, posthoc_logit_adjust

__all__ = [
    "CrossEntropy",
    "LOSSES",
    "ce",
    "class_balanced_weights",
    "create_loss",
    "list_losses",
    "posthoc_logit_adjust",
    "register_loss",
]
