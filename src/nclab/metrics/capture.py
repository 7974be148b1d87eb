"""Capture penultimate features of any ``nn.Module`` with a forward pre-hook (no global state)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nclab.errors import NclabError


def _last_linear(model: nn.Module) -> nn.Module:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise NclabError("the model has no nn.Linear: pass the module whose input to capture")
    return last


class FeatureCapture:
    """Handle returned by :func:`capture_features`; also a context manager that removes its hook.

    Attributes:
        last: the input of the module in the latest forward pass (detached), or None.
        module: the hooked module.
    """

    def __init__(self, model: nn.Module, module: nn.Module | str | None = None, *, keep: str = "last"):
        if keep not in ("last", "all"):
            raise NclabError(f"keep must be 'last' or 'all', got {keep!r}")
        if isinstance(module, str):
            try:
                module = model.get_submodule(module)
            except AttributeError:
                raise NclabError(f"model has no submodule named {module!r}") from None
        self.module = module if module is not None else _last_linear(model)
        self.keep = keep
        self.last: torch.Tensor | None = None
        self._batches: list[torch.Tensor] = []
        self._handle = self.module.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0].detach()
        if x.ndim > 2:
            x = x.flatten(1)
        self.last = x
        if self.keep == "all":
            self._batches.append(x)

    def all(self) -> torch.Tensor:
        """All captured batches concatenated (needs ``keep="all"``)."""
        if self.keep != "all":
            raise NclabError("all() needs capture_features(..., keep='all')")
        if not self._batches:
            raise NclabError("nothing captured yet: run a forward pass first")
        return torch.cat(self._batches)

    def clear(self) -> None:
        self.last, self._batches = None, []

    def remove(self) -> None:
        """Remove the hook."""
        self._handle.remove()

    def __enter__(self) -> FeatureCapture:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def capture_features(
    model: nn.Module, module: nn.Module | str | None = None, *, keep: str = "last"
) -> FeatureCapture:
    """Capture the input of ``module`` (default: the last ``nn.Linear`` of ``model``).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        >>> with capture_features(net) as cap:
        ...     _ = net(torch.randn(5, 4))
        >>> tuple(cap.last.shape)
        (5, 3)
    """
    return FeatureCapture(model, module, keep=keep)
