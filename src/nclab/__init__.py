"""nclab: neural collapse under class imbalance.

Measure the last-layer geometry of any model (``nclab.metrics``), predict it with the
unconstrained-features model and its closed forms (``nclab.geometry``, ``nclab.ufm``), and induce it
while training on long-tailed data (``nclab.train``, ``nclab.align``).

``import nclab`` stays light: subpackages are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "errors",
    "registry",
    "metrics",
    "geometry",
    "ufm",
    "data",
    "models",
    "heads",
    "losses",
    "align",
    "train",
    "report",
    "fed",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"nclab.{name}")
    raise AttributeError(f"module 'nclab' has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES]
