"""Validation split carved per class from a training set (model selection never uses the test set)."""

from __future__ import annotations

import torch

from nclab.errors import ConfigError


def validation_split(
    labels: torch.Tensor, fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): ``fraction`` of every class (at least one sample of each
    class with >= 2 samples) goes to validation, chosen with a seeded generator."""
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    tr, va = [], []
    for c in torch.unique(labels):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = max(1, int(round(fraction * len(idx)))) if len(idx) >= 2 else 0
        va.append(idx[:n_val])
        tr.append(idx[n_val:])
    return torch.cat(tr).sort().values, torch.cat(va).sort().values


__all__ = ["validation_split"]
