"""Backbone + head as one module: the centralised Trainer (DDP synchronises both) and the federated
runner (whose clients exchange its state) build the same network."""

from __future__ import annotations

import torch
from torch import nn


class Network(nn.Module):
    """``forward(x) -> (features, logits)``; the parts stay reachable as ``.model`` and ``.head``."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model(x)
        return feats, self.head(feats)
