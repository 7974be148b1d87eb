"""SpA strategies as training-loop hooks (:class:`nclab.train.hooks.TrainHook`).

- :class:`TrackerHook` updates the shared :class:`EMAClassMeans` every step (``on_batch``).
- :class:`SpAProj`: gradient edit between backward and the optimizer step (``after_backward``).
- :class:`SpASlerp`: weight update after the optimizer step (``after_step``), strength
  alpha_t = alpha (1 - cos(pi t/T))/2 over training progress t/T.
- :class:`SpAReg`: loss term lambda * mean_k (1 - cos(w_k, m_k)) (``extra_loss``) on the head, the
  features, or both.
Only classes the tracker has seen are edited.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from nclab.align.functional import masked_reg_loss, project_gradient, slerp_toward
from nclab.align.tracker import EMAClassMeans
from nclab.errors import ConfigError
from nclab.train.hooks import HookContext, TrainHook


def _head_weight_param(head: torch.nn.Module, strategy: str) -> torch.nn.Parameter:
    w = getattr(head, "weight", None)
    if not isinstance(w, torch.nn.Parameter) or not w.requires_grad:
        raise ConfigError(
            f"SpA-{strategy} edits the classifier weights, but this head's weights are fixed "
            "(e.g. fixed_etf); use SpA-Reg with side=features instead"
        )
    return w


class TrackerHook(TrainHook):
    def __init__(self, tracker: EMAClassMeans):
        self.tracker = tracker

    def on_batch(self, features, labels, ctx):
        self.tracker.update(features, labels)

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state):
        self.tracker.load_state_dict(state)


class SpAProj(TrainHook):
    def __init__(self, tracker: EMAClassMeans, head: torch.nn.Module, gamma: float = 0.6):
        self.tracker, self.gamma = tracker, float(gamma)
        self.w = _head_weight_param(head, "Proj")

    def after_backward(self, ctx: HookContext) -> None:
        if self.w.grad is None:
            return
        seen = self.tracker.seen.to(self.w.device)
        t = self.tracker.targets().to(self.w)
        new = project_gradient(self.w.grad, self.w.detach(), t, self.gamma)
        self.w.grad.copy_(torch.where(seen[:, None], new, self.w.grad))


class SpASlerp(TrainHook):
    def __init__(
        self, tracker: EMAClassMeans, head: torch.nn.Module, alpha: float = 0.02, threshold: float = 0.95
    ):
        self.tracker, self.alpha, self.threshold = tracker, float(alpha), float(threshold)
        self.w = _head_weight_param(head, "SLERP")

    def strength(self, progress: float) -> float:
        return self.alpha * (1 - math.cos(math.pi * progress)) / 2

    @torch.no_grad()
    def after_step(self, ctx: HookContext) -> None:
        seen = self.tracker.seen.to(self.w.device)
        t = self.tracker.targets().to(self.w)
        new = slerp_toward(self.w.detach(), t, self.strength(ctx.progress), self.threshold)
        self.w.copy_(torch.where(seen[:, None], new, self.w))


class SpAReg(TrainHook):
    def __init__(
        self,
        tracker: EMAClassMeans,
        head: torch.nn.Module,
        lam: float = 0.1,
        weighting: str = "uniform",
        side: str = "head",
        counts: list[int] | None = None,
    ):
        if weighting not in ("uniform", "count"):
            raise ConfigError(f"SpA-Reg weighting must be 'uniform' or 'count', got {weighting!r}")
        if side not in ("head", "features", "both"):
            raise ConfigError(f"SpA-Reg side must be 'head', 'features' or 'both', got {side!r}")
        if side in ("head", "both"):
            _head_weight_param(head, "Reg (side=head)")
        self.tracker, self.head, self.lam, self.side = tracker, head, float(lam), side
        self.counts = (  # beside the head's weight: no copy per step
            torch.tensor(counts, dtype=torch.float32, device=head.weight.device)
            if (weighting == "count" and counts)
            else None
        )

    def extra_loss(self, features, logits, labels, ctx):
        # the classes the tracker has seen, as a mask (no host read); nothing before the first
        seen = self.tracker.seen.to(features.device)
        w = self.head.weight
        total = features.new_zeros(())
        if self.side in ("head", "both"):
            t = self.tracker.targets().to(w).detach()
            wts = seen.to(w.dtype) * (self.counts.to(w) if self.counts is not None else 1.0)
            total = total + masked_reg_loss(w, t, wts)
        if self.side in ("features", "both"):
            # features side: pull each (centred) batch feature toward its class's classifier row
            centred = features - features.mean(0, keepdim=True)
            total = total + (1 - F.cosine_similarity(centred, w.detach()[labels], dim=1)).mean()
        return self.lam * total * seen.any()


def build_hooks(
    cfg: Any,
    head: torch.nn.Module,
    num_classes: int,
    dim: int,
    counts: list[int] | None = None,
    *,
    device: torch.device | str | None = None,
) -> list[TrainHook]:
    """Hooks for the configured strategies (``cfg.strategies``: any of proj, slerp, reg)."""
    strategies = list(cfg.strategies)
    unknown = [s for s in strategies if s not in ("proj", "slerp", "reg")]
    if unknown:
        raise ConfigError(f"unknown align strategies {unknown}; choose from proj, slerp, reg")
    if not strategies:
        return []
    tracker = EMAClassMeans(num_classes, dim, momentum=cfg.momentum, centered=cfg.centered, device=device)
    hooks: list[TrainHook] = [TrackerHook(tracker)]
    for s in strategies:
        if s == "proj":
            hooks.append(SpAProj(tracker, head, cfg.proj_gamma))
        elif s == "slerp":
            hooks.append(SpASlerp(tracker, head, cfg.slerp_alpha, cfg.slerp_threshold))
        else:
            hooks.append(SpAReg(tracker, head, cfg.reg_lambda, cfg.reg_weighting, cfg.reg_side, counts))
    return hooks
