"""EMA of class means shared by the SpA strategies (momentum 0.9, papers.md section 8).

Updated every iteration from the batch under no_grad; classes absent from the batch keep their value;
a class's first observation initialises it. Under DDP the per-class batch sums and counts are
all-reduced first, so every rank applies the identical update.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F


class EMAClassMeans:
    """EMA class means (K, d); ``targets()`` gives the unit (centred) directions."""

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        momentum: float = 0.9,
        centered: bool = True,
        device: torch.device | str | None = None,
    ):
        self.momentum, self.centered = float(momentum), bool(centered)
        self.means = torch.zeros(num_classes, dim, device=device)
        self.seen = torch.zeros(num_classes, dtype=torch.bool, device=device)

    def to(self, device: torch.device | str) -> EMAClassMeans:
        """Move the state to ``device`` (the training loop keeps it beside the features)."""
        self.means, self.seen = self.means.to(device), self.seen.to(device)
        return self

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """One EMA step from a batch, on the device of the state, without a host synchronisation."""
        k = self.means.shape[0]
        dev = self.means.device
        f = features.detach().float().to(dev)
        labels = labels.to(dev)
        sums = torch.zeros(k, f.shape[1], device=dev).index_add_(0, labels, f)
        cnt = torch.zeros(k, device=dev).index_add_(0, labels, torch.ones_like(labels, dtype=f.dtype))
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
            dist.all_reduce(cnt)
        present = (cnt > 0)[:, None]
        batch = sums / cnt.clamp_min(1)[:, None]
        ema = self.momentum * self.means + (1 - self.momentum) * batch
        new = torch.where(self.seen[:, None], ema, batch)
        self.means = torch.where(present, new, self.means)
        self.seen = self.seen | present[:, 0]

    def targets(self) -> torch.Tensor:
        """Unit directions of the means, centred on their (class-balanced) average over the classes
        seen when ``centered`` (masked arithmetic: no host read)."""
        m = self.means
        seen = self.seen[:, None]
        if self.centered:
            n = self.seen.sum().clamp_min(1)
            m = m - torch.where(seen, m, torch.zeros_like(m)).sum(0) / n
        return F.normalize(torch.where(seen, m, torch.zeros_like(m)), dim=1)

    def state_dict(self) -> dict[str, Any]:
        return {"means": self.means.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.means.copy_(s["means"])
        self.seen.copy_(s["seen"])
