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

    def __init__(self, num_classes: int, dim: int, *, momentum: float = 0.9, centered: bool = True):
        self.momentum, self.centered = float(momentum), bool(centered)
        self.means = torch.zeros(num_classes, dim)
        self.seen = torch.zeros(num_classes, dtype=torch.bool)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        k = self.means.shape[0]
        f = features.detach().float()
        sums = torch.zeros(k, f.shape[1], device=f.device).index_add_(0, labels, f)
        cnt = torch.bincount(labels, minlength=k).float().to(f.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
            dist.all_reduce(cnt)
        sums, cnt = sums.cpu(), cnt.cpu()
        present = cnt > 0
        batch = sums[present] / cnt[present, None]
        old = self.means[present]
        first = ~self.seen[present]
        new = torch.where(first[:, None], batch, self.momentum * old + (1 - self.momentum) * batch)
        self.means[present] = new
        self.seen |= present

    def targets(self) -> torch.Tensor:
        """Unit directions of the means, centred on their (class-balanced) average when ``centered``."""
        m = self.means
        if self.centered and bool(self.seen.any()):
            m = m - m[self.seen].mean(0)
        return F.normalize(torch.where(self.seen[:, None], m, torch.zeros_like(m)), dim=1)

    def state_dict(self) -> dict[str, Any]:
        return {"means": self.means.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.means.copy_(s["means"])
        self.seen.copy_(s["seen"])
