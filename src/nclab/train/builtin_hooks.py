"""The loop's own features, attached as hooks (:mod:`nclab.train.hooks`) so that the loop itself stays
forward, backward, step, evaluate, checkpoint.

- :class:`LossSchedule`: ``loss_fn.set_epoch(epoch)`` at each epoch start (LDAM's deferred
  re-weighting, DRW, Cao et al. 2019).
- :class:`Mixup`: mixup (Zhang et al., ICLR 2018): the batch becomes lam x + (1 - lam) x[perm] and
  the loss lam L(y) + (1 - lam) L(y[perm]), drawn from the step's seeded generator.
- :class:`OnlineNC`: ``train.nc_source=online``: the epoch's training-batch features gathered into a
  :class:`~nclab.metrics.FeatureStats` (and the loss summed) with no extra forward pass; the evaluation
  reads them. Its checkpointed state is summed over the DDP ranks (a collective: every rank saves).
- :class:`HeadMeans`: feeds the nearest-ETF head's EMA of class means every step and recomputes its
  classifier after the optimizer step (the weight the forward pass used is saved for backward and must
  not change between the two).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nclab.metrics import FeatureStats
from nclab.train.device import to_device
from nclab.train.hooks import HookContext, TrainHook


def mixup_batch(
    x: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, tuple[float, torch.Tensor]]:
    """Mixup (Zhang et al., ICLR 2018): lam ~ Beta(alpha, alpha), x' = lam x + (1 - lam) x[perm].

    Returns x' and (lam, perm), perm on ``x``'s device; the loss is lam L(y) + (1 - lam) L(y[perm]).
    Drawn on the host from ``generator`` (the same pairs on every device, and in a resumed run)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    g = torch.Generator().manual_seed(seed)
    perm = to_device(torch.randperm(len(x), generator=g), x.device)  # without blocking on a GPU
    return lam * x + (1.0 - lam) * x[perm], (lam, perm)


class LossSchedule(TrainHook):
    """Tells an epoch-scheduled loss the epoch (0-based) before the epoch's first step."""

    def __init__(self, loss_fn: torch.nn.Module):
        self.loss_fn = loss_fn

    def on_epoch_start(self, ctx: HookContext) -> None:
        self.loss_fn.set_epoch(ctx.epoch)


class Mixup(TrainHook):
    """Convex pairs of inputs, the same pairs of losses (``train.mixup_alpha``)."""

    def __init__(self, alpha: float):
        self.alpha = float(alpha)
        self._mix: tuple[float, torch.Tensor] | None = None

    def transform_batch(self, x, y, ctx):
        x, self._mix = mixup_batch(x, self.alpha, ctx.generator)
        return x, y

    def combine_loss(self, loss, loss_of: Callable[[torch.Tensor], torch.Tensor], y, ctx):
        lam, perm = self._mix
        return lam * loss + (1.0 - lam) * loss_of(y[perm])  # perm is on the batch's device


class OnlineNC(TrainHook):
    """Training-feature statistics of the running epoch (``train.nc_source=online``)."""

    def __init__(self, num_classes: int, dim: int, device: torch.device, *, rank: int = 0, world: int = 1):
        self.k, self.d, self.device, self.rank, self.world = num_classes, dim, device, rank, world
        self.reset()

    def reset(self) -> None:
        self.stats = FeatureStats(self.k, self.d, device=self.device)
        self.loss = torch.zeros((), dtype=torch.float64, device=self.device)

    def on_epoch_start(self, ctx: HookContext) -> None:
        if ctx.step_in_epoch == 0:  # a new epoch (not a mid-epoch resume): fresh statistics
            self.reset()

    def on_batch(self, features, labels, ctx):  # this rank's batch; summed over ranks at evaluation
        self.stats.update(features.float(), labels, validate=False)
        self.loss += ctx.loss.double() * len(labels)

    def state_dict(self) -> dict[str, Any]:
        stats, loss = self.stats, self.loss
        if self.world > 1:  # the global partial-epoch sums (collective: every rank saves)
            from nclab.train.evaluate import all_reduce_stats

            stats = FeatureStats(self.k, self.d, device=self.device).merge(self.stats)
            loss = self.loss.clone()
            all_reduce_stats(stats, loss)
        return {"stats": stats.state_dict(), "loss": loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reset()
        if self.rank == 0:  # rank 0 carries the global sums; the other ranks start at 0
            self.stats.load_state_dict(state["stats"])
            self.loss = torch.as_tensor(state["loss"], dtype=torch.float64).to(self.device)


class HeadMeans(TrainHook):
    """Feeds the nearest-ETF head's EMA of class means; refreshes its classifier after the step."""

    def on_batch(self, features, labels, ctx):
        ctx.head.update_means(features, labels, refresh=False)

    def after_step(self, ctx):
        ctx.head.refresh()
