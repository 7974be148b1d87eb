"""What a run is built from: the backbone and head (through the registries, with an explicit input
spec), the optimizer's parameter groups and the learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nclab.train.config import Config, ModelConfig
from nclab.train.data_setup import TrainData


def build_network(
    model: ModelConfig, head: str, head_kwargs: dict[str, Any], data: TrainData, seed: int
) -> tuple[nn.Module, nn.Module]:
    """Backbone and head from the registries, initialised from ``seed``; the backbone gets the input
    spec of ``data`` it names (``in_channels`` or ``in_features``). Centralised and federated runs."""
    from nclab.heads import create_head
    from nclab.models import create_model

    torch.manual_seed(seed)
    inputs = {"in_channels": data.in_channels, "in_features": data.in_features}  # each backbone takes its own
    backbone = create_model(model.name, inputs=inputs, feature_dim=model.feature_dim, **dict(model.kwargs))
    return backbone, create_head(head, backbone.num_features, len(data.counts), **head_kwargs)


def build_modules(cfg: Config, data: TrainData) -> tuple[nn.Module, nn.Module]:
    """The run's backbone and head (:func:`build_network`); a federated head is a ConfigError."""
    model, head = build_network(cfg.model, cfg.head.name, dict(cfg.head.kwargs), data, cfg.train.seed)
    if hasattr(head, "project"):  # its rows act on a projection of the features, which NC and SpA do not see
        from nclab.errors import ConfigError

        raise ConfigError(
            f"head.name={cfg.head.name} is a federated head (its classifier rows act on a projection of the "
            "features, not on the backbone's): use it with nclab fed, or pick another head for nclab train"
        )
    return model, head


def build_optimizer(cfg: Config, model: nn.Module, head: nn.Module) -> torch.optim.Optimizer:
    """Param groups: backbone weights, head weights, biases and normalisation parameters."""
    o = cfg.optim
    head_wd = o.weight_decay if o.head_weight_decay is None else o.head_weight_decay
    groups: dict[str, list[nn.Parameter]] = {"backbone": [], "head": [], "bias": []}
    for mod, key in ((model, "backbone"), (head, "head")):
        for _, p in mod.named_parameters():
            if not p.requires_grad:
                continue
            groups["bias" if p.ndim <= 1 else key].append(p)
    params = [
        {"params": groups["backbone"], "weight_decay": o.weight_decay},
        {"params": groups["head"], "weight_decay": head_wd},
        {"params": groups["bias"], "weight_decay": o.bias_weight_decay},
    ]
    params = [g for g in params if g["params"]]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    return torch.optim.AdamW(params, lr=o.lr)


def lr_factor(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 0 or step decay at the milestones (epochs)."""
    s = cfg.sched
    epoch_f = step / steps_per_epoch
    if s.warmup_epochs and epoch_f < s.warmup_epochs:
        return (step + 1) / (s.warmup_epochs * steps_per_epoch)
    if s.kind == "cosine":
        total = cfg.train.epochs * steps_per_epoch
        warm = s.warmup_epochs * steps_per_epoch
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    if s.kind == "step":
        return s.gamma ** sum(epoch_f >= m for m in s.milestones)
    return 1.0
