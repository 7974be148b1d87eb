"""Backbones that return features; the classifier head lives in :mod:`nclab.heads`.

Contract (as timm's ``forward_features``): every model built by :func:`create_model` is an
``nn.Module`` with ``forward(x) -> (B, num_features)`` features and an int attribute
``num_features``. Register new backbones with ``@register_model``.

Factories are strict: an option a backbone does not take raises, naming the accepted ones. The input
spec is explicit: each backbone names the input argument it uses (``in_channels`` for the image
backbones, ``in_features`` for the MLP) and :func:`create_model` passes ``inputs`` entries only to the
backbones whose signature names them.
"""

from nclab.models import backbones as _backbones  # noqa: F401  (registers its entries)
from nclab.models.base import MLP, MODELS, create_model, list_models, mlp, register_model
from nclab.models.network import Network

__all__ = ["MLP", "MODELS", "Network", "create_model", "list_models", "mlp", "register_model"]
