"""Backbones that return features; the classifier head lives in :mod:`nclab.heads`.

Contract (as timm's ``forward_features``): every model built by :func:`create_model` is an
``nn.Module`` with ``forward(x) -> (B, num_features)`` features and an int attribute
``num_features``. Register new backbones with ``@register_model``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nclab.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the backbone registered as ``name`` (unknown names list the available ones)."""
    return MODELS.create(name, **kwargs)


def list_models() -> list[str]:
    """Registered backbone names."""
    return MODELS.names()


class MLP(nn.Module):
    """A small ReLU MLP on flattened inputs (for synthetic data and tests)."""

    def __init__(self, in_features: int, hidden: int = 128, feature_dim: int = 64, depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers += [nn.Linear(width, feature_dim), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.num_features = feature_dim

    def forward(self, x):  # (B, ...) -> (B, feature_dim)
        return self.body(x)


@register_model
def mlp(*, in_features: int, hidden: int = 128, feature_dim: int = 64, depth: int = 2, **_: Any):
    """MLP backbone: ``depth`` Linear+ReLU layers ending in ``feature_dim`` features."""
    return MLP(in_features, hidden, feature_dim, depth)


from nclab.models import backbones as _backbones  # noqa: E402,F401  (registers the backbones)
