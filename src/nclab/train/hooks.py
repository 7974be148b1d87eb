"""Named points where features bolt onto the training loop (NC tracking, SpA edits, schedules).

The loop calls, for every hook in order:

- ``on_train_start(ctx)`` once (after a resume too, after ``load_state_dict``);
- ``on_epoch_start(ctx)``;
- ``transform_batch(x, y, ctx)`` -> (x, y) before the forward pass (e.g. mixup; ``ctx.generator`` is
  the step's seeded generator);
- ``combine_loss(loss, loss_of, y, ctx)`` -> the loss, given ``loss_of(targets)`` (e.g. mixup's pair);
- ``on_batch(features, labels, ctx)`` after the forward pass, features detached (trackers;
  ``ctx.loss`` is the step's loss before any extra term);
- ``extra_loss(features, logits, labels, ctx)`` -> a scalar tensor added to the loss, or None;
- ``after_backward(ctx)`` between ``backward`` and the optimizer step (gradient edits);
- ``after_step(ctx)`` after the optimizer step (weight edits);
- ``on_epoch_end(ctx)``.

Hooks with state implement ``state_dict``/``load_state_dict`` so that checkpoints resume exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class HookContext:
    """What a hook may read: the modules, counters and progress of the running loop."""

    model: nn.Module
    head: nn.Module
    epoch: int = 0
    step: int = 0
    total_steps: int = 1
    steps_per_epoch: int = 1
    epochs: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    world_size: int = 1
    rank: int = 0
    step_in_epoch: int = 0
    generator: torch.Generator | None = None  # this step's seeded generator
    loss: torch.Tensor | None = None  # this step's loss (detached) before extra terms
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1] (``step / total_steps``)."""
        return min(1.0, self.step / max(1, self.total_steps))


class TrainHook:
    """Base class: every method is a no-op so subclasses override only what they need."""

    def on_train_start(self, ctx: HookContext) -> None:
        pass

    def on_epoch_start(self, ctx: HookContext) -> None:
        pass

    def transform_batch(
        self, x: torch.Tensor, y: torch.Tensor, ctx: HookContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def combine_loss(self, loss: torch.Tensor, loss_of, y: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        return loss

    def on_batch(self, features: torch.Tensor, labels: torch.Tensor, ctx: HookContext) -> None:
        pass

    def extra_loss(
        self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, ctx: HookContext
    ) -> torch.Tensor | None:
        return None

    def after_backward(self, ctx: HookContext) -> None:
        pass

    def after_step(self, ctx: HookContext) -> None:
        pass

    def on_epoch_end(self, ctx: HookContext) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
