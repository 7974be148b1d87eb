"""The backbone registry, its factory and the MLP backbone. (re-exported by :mod:`nclab.models`; see its docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from nclab.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def create_model(name: str, *, inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Build the backbone registered as ``name``.

    Args:
        name: a registered backbone (unknown names list the available ones).
        inputs: the input spec, e.g. ``{"in_channels": 3, "in_features": 3072}``; each entry reaches the
            backbone only if its factory takes it, and an explicit keyword in ``kwargs`` wins.
        **kwargs: backbone options; an unknown one raises naming the accepted options.

    Example:
        >>> create_model("mlp", inputs={"in_channels": 1, "in_features": 8}, feature_dim=4).num_features
        4
    """
    return MODELS.create(name, _optional=inputs, **kwargs)


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
def mlp(*, in_features: int, hidden: int = 128, feature_dim: int = 64, depth: int = 2):
    """MLP backbone: ``depth`` Linear+ReLU layers ending in ``feature_dim`` features."""
    return MLP(in_features, hidden, feature_dim, depth)
