"""The head registry, its factory and the learnable linear head. (re-exported by :mod:`nclab.heads`; see its docstring)."""

from __future__ import annotations

from typing import Any

from torch import nn

from nclab.registry import Registry

HEADS: Registry = Registry("head")
register_head = HEADS.register


def create_head(name: str, in_features: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the head registered as ``name`` for ``in_features`` -> ``num_classes``.

    An option in ``kwargs`` the head does not take raises, naming the accepted options.
    """
    return HEADS.create(name, in_features, num_classes, **kwargs)


def list_heads() -> list[str]:
    """Registered head names."""
    return HEADS.names()


class LinearHead(nn.Linear):
    """Learnable linear classifier ``W h + b`` (bias optional)."""

    def diagnostics(self) -> dict[str, float]:
        norms = self.weight.detach().norm(dim=1)
        return {
            "w_norm_mean": float(norms.mean()),
            "w_norm_std": float(norms.std(unbiased=False)),
        }


@register_head
def linear(in_features: int, num_classes: int, *, bias: bool = True) -> nn.Module:
    """Learnable linear head (papers.md section 2)."""
    return LinearHead(in_features, num_classes, bias=bias)
