"""Two-stage long-tailed methods on a trained backbone (papers.md section 9).

- cRT (classifier re-training, Kang et al., ICLR 2020): backbone frozen, the head re-initialised and
  trained with class-balanced sampling.
- tau-normalisation (Kang et al. 2020): w_k <- w_k / ||w_k||^tau, post hoc, tau chosen on a validation
  split carved from the training set (never the test set).
- LWS (learnable weight scaling, Kang et al. 2020): logits f_k (w_k^T h + b_k) with only f trained,
  class-balanced sampling.
- Weight balancing stage 2 (Alshammari et al., CVPR 2022): head trained with the class-balanced loss and
  a MaxNorm projection ||w_k|| <= ``max_norm`` after every step.

The backbone is frozen in every method, so its features are computed once (eval mode) and the head
is trained on them: only the head changes (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nclab.data.samplers import create_sampler
from nclab.data.split import validation_split
from nclab.registry import Registry

STAGE2: Registry = Registry("stage-2 method")


@dataclass
class Stage2Input:
    """What a stage-2 method receives from the training loop (after ``fit``).

    ``feats``: frozen training features (N, d) on the device; ``labels``: their labels on the host (the
    samplers draw index orders there); ``head``: the trained head; ``new_head``: a freshly initialised
    head of the run's kind; ``validation``: the (features, labels) a post-hoc search may use: the
    run's own held-out split (``data.val_fraction``) or a split carved from the training features."""

    feats: torch.Tensor
    labels: torch.Tensor
    counts: Sequence[int]
    head: nn.Module
    new_head: Callable[[], nn.Module]
    validation: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    epochs: int = 10
    lr: float = 0.1
    batch_size: int = 128
    seed: int = 0
    max_norm: float = 1.0

    @property
    def train_kw(self) -> dict[str, Any]:
        return dict(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed)


def run_stage2(method: str, inp: Stage2Input) -> tuple[nn.Module, dict[str, Any]]:
    """The head after the stage-2 method registered as ``method``, and the values it reports."""
    return STAGE2.create(method, inp)


def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """w_k / ||w_k||^tau (rows are classes)."""
    return weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12) ** tau


@torch.no_grad()
def search_tau(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    feats: torch.Tensor,
    labels: torch.Tensor,
    taus: Sequence[float] = tuple(i / 10 for i in range(0, 21)),
) -> tuple[float, float]:
    """The tau in ``taus`` with the best balanced accuracy (mean per-class) on validation features
    (the first such tau on ties). Computed on the device of the features; one host read at the end."""
    k = weight.shape[0]
    labels = labels.to(feats.device)
    tot = torch.zeros(k, device=feats.device).index_add_(0, labels, torch.ones_like(labels, dtype=torch.float))
    present = tot > 0
    accs = []
    for tau in taus:
        logits = feats @ tau_normalize(weight, tau).T + (bias if bias is not None else 0.0)
        hit = (logits.argmax(1) == labels).float()
        per = torch.zeros(k, device=feats.device).index_add_(0, labels, hit) / tot.clamp_min(1)
        accs.append((per * present).sum() / present.sum())
    acc = torch.stack(accs).cpu()
    i = int(acc.argmax())  # the first maximum
    return float(taus[i]), float(acc[i])


@torch.no_grad()
def frozen_features(model: nn.Module, x, prep, bs: int = 256) -> torch.Tensor:
    """Features of every image of ``x`` (a tensor or a LazyImages) in eval mode, in order."""
    from nclab.data.lazy import chunks, iter_batches

    model.eval()
    dev = next(model.parameters()).device
    return torch.cat([model(prep(xb)) for xb in iter_batches(x, chunks(len(x), bs), dev)])


class LWSHead(nn.Module):
    """Learnable per-class scales on a frozen linear classifier."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.register_buffer("weight", head.weight.detach().clone())
        b = getattr(head, "bias", None)
        self.register_buffer(
            "fixed_bias", b.detach().clone() if b is not None else torch.zeros(self.weight.shape[0])
        )
        self.scale = nn.Parameter(torch.ones(self.weight.shape[0], device=self.weight.device))
        self.bias = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.scale * (h @ self.weight.T + self.fixed_bias)


def train_head(
    head: nn.Module,
    feats: torch.Tensor,
    labels: torch.Tensor,
    counts: Sequence[int],
    *,
    epochs: int = 10,
    lr: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
    loss: str = "ce",
    max_norm: float | None = None,
    weight_decay: float = 5e-4,
) -> nn.Module:
    """Train ``head`` on fixed features with class-balanced sampling (cRT, LWS) or the class-balanced
    loss with a MaxNorm projection (weight balancing, ``loss="cb"``, ``max_norm``)."""
    from nclab.losses import create_loss

    sampler = create_sampler("instance" if loss == "cb" else "class_balanced", labels, counts, seed=seed)
    labels = labels.to(feats.device)
    crit = create_loss(loss, counts).to(feats.device)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    steps = max(1, len(labels) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps)
    for e in range(epochs):
        order = sampler.indices(e)
        for s in range(steps):
            idx = order[s * batch_size : (s + 1) * batch_size].to(feats.device)
            out = crit(head(feats[idx]), labels[idx])
            opt.zero_grad()
            out.backward()
            opt.step()
            sched.step()
            if max_norm is not None:
                with torch.no_grad():
                    w = head.weight
                    w.mul_((max_norm / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))
    return head


def crt(head_factory, feats: torch.Tensor, labels: torch.Tensor, counts: Sequence[int], **kw) -> nn.Module:
    """Re-initialise the head (``head_factory()``) and train it with class-balanced sampling."""
    torch.manual_seed(kw.get("seed", 0))
    return train_head(head_factory(), feats, labels, counts, **kw)


def lws(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, counts: Sequence[int], **kw) -> nn.Module:
    """Learn per-class scales of the trained classifier with class-balanced sampling."""
    kw.setdefault("weight_decay", 0.0)
    return train_head(LWSHead(head), feats, labels, counts, **kw)


def weight_balancing_stage2(
    head: nn.Module, feats, labels, counts, *, max_norm: float = 1.0, **kw
) -> nn.Module:
    """Stage 2 of weight balancing: class-balanced loss + MaxNorm every iteration."""
    return train_head(head, feats, labels, counts, loss="cb", max_norm=max_norm, **kw)


def predict(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return head(feats).argmax(1)


def _linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A linear head holding the given (effective) classifier."""
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).to(weight.device)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


@STAGE2.register(name="crt")
def _crt(inp: Stage2Input) -> tuple[nn.Module, dict[str, Any]]:
    """cRT: a new head trained with class-balanced sampling."""
    return crt(inp.new_head, inp.feats, inp.labels, inp.counts, **inp.train_kw), {}


@STAGE2.register(name="lws")
def _lws(inp: Stage2Input) -> tuple[nn.Module, dict[str, Any]]:
    """LWS, folded into a linear head (scale_k w_k, scale_k b_k)."""
    head = lws(inp.head, inp.feats, inp.labels, inp.counts, **inp.train_kw)
    return _linear_from(head.scale[:, None] * head.weight, head.scale * head.fixed_bias), {}


@STAGE2.register(name="wb")
def _wb(inp: Stage2Input) -> tuple[nn.Module, dict[str, Any]]:
    """Weight balancing's stage 2 (class-balanced loss + MaxNorm) on the trained head."""
    head = weight_balancing_stage2(
        inp.head, inp.feats, inp.labels, inp.counts, max_norm=inp.max_norm, **inp.train_kw
    )
    return head, {}


@STAGE2.register(name="tau_norm")
def _tau_norm(inp: Stage2Input) -> tuple[nn.Module, dict[str, Any]]:
    """tau-normalisation with tau searched on the validation features."""
    w = inp.head.weight.detach()
    bias = inp.head.bias.detach() if getattr(inp.head, "bias", None) is not None else None
    vf, vy = inp.validation()
    tau, val_acc = search_tau(w, bias, vf, vy)
    return _linear_from(tau_normalize(w, tau), bias), {"stage2/tau": tau, "stage2/val_balanced_acc": val_acc}


METHODS = tuple(STAGE2.names())  # what ``stage2.method`` accepts besides "none"

__all__ = [
    "METHODS",
    "STAGE2",
    "Stage2Input",
    "crt",
    "lws",
    "run_stage2",
    "search_tau",
    "tau_normalize",
    "validation_split",
    "weight_balancing_stage2",
]
