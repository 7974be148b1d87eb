"""Classifier heads: features ``(B, d)`` -> logits ``(B, K)``.

Contract: every head is an ``nn.Module`` with ``forward(features) -> logits``, a ``weight`` tensor
``(K, d)`` (the effective classifier rows, a parameter or a buffer), ``bias`` (``(K,)`` or None),
and ``diagnostics() -> dict`` of floats (norms, alignment). Register with ``@register_head``.
"""

from nclab.heads import etf as _etf  # noqa: F401  (registers its entries)
from nclab.heads import gela as _gela  # noqa: F401  (registers its entries)
from nclab.heads.base import HEADS, LinearHead, create_head, linear, list_heads, register_head

__all__ = ["HEADS", "LinearHead", "create_head", "linear", "list_heads", "register_head"]
