"""The loss registry, its factory and cross-entropy. (re-exported by :mod:`nclab.losses`; see its docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nclab.registry import Registry

LOSSES: Registry = Registry("loss")
register_loss = LOSSES.register


def create_loss(name: str, counts: Sequence[int], **params: Any) -> nn.Module:
    """Build the loss registered as ``name`` for the given training class counts.

    An option in ``params`` the loss does not take raises, naming the accepted options.
    """
    return LOSSES.create(name, counts, **params)


def list_losses() -> list[str]:
    """Registered loss names."""
    return LOSSES.names()


class CrossEntropy(nn.Module):
    """Cross-entropy with optional label smoothing (counts unused, kept for the common contract)."""

    def __init__(self, counts: Sequence[int], label_smoothing: float = 0.0):
        super().__init__()
        self.num_classes = len(counts)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)


@register_loss
def ce(counts: Sequence[int], *, label_smoothing: float = 0.0) -> nn.Module:
    """Cross-entropy (optionally label-smoothed)."""
    return CrossEntropy(counts, label_smoothing)
