"""Training hooks' states in a checkpoint, keyed by hook name (:func:`hook_states`,
:func:`restore_hooks`), so a resume whose hooks differ from the checkpoint's is an error naming both sets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nclab.errors import NclabError


def hook_names(hooks: Sequence[Any]) -> list[str]:
    """The checkpoint keys of ``hooks``: the class name, numbered when a class appears twice.

    >>> class A: ...
    >>> class B: ...
    >>> hook_names([A(), B(), A()])
    ['A#0', 'B', 'A#1']
    """
    names = [type(h).__name__ for h in hooks]
    return [n if names.count(n) == 1 else f"{n}#{names[:i].count(n)}" for i, n in enumerate(names)]


def hook_states(hooks: Sequence[Any]) -> dict[str, Any]:
    """Each hook's ``state_dict()`` under its :func:`hook_names` key (a checkpoint's ``hooks``)."""
    return dict(zip(hook_names(hooks), (h.state_dict() for h in hooks)))


def restore_hooks(hooks: Sequence[Any], state: dict[str, Any], run_dir: str | Path) -> None:
    """Load each hook's state from the checkpoint ``state`` of the run in ``run_dir``.

    Raises:
        NclabError: the checkpoint's hooks differ from ``hooks`` (align.strategies or the head changed).
    """
    saved = state.get("hooks", {})
    if isinstance(saved, list):  # earlier checkpoints: the other hooks' states in order
        saved = _legacy_hook_states(hooks, saved, state)
    names = hook_names(hooks)
    if set(saved) != set(names):
        raise NclabError(
            f"cannot resume {run_dir}: the checkpoint's training hooks {sorted(saved)} differ from "
            f"this config's {sorted(names)} (align.strategies or the head changed): "
            "resume with the run's own config.yaml"
        )
    for h, name in zip(hooks, names):
        h.load_state_dict(saved[name])


def _legacy_hook_states(hooks: Sequence[Any], states: list, state: dict[str, Any]) -> dict[str, Any]:
    """Hook states of a checkpoint written before the loop's own features became hooks."""
    from nclab.train.builtin_hooks import LossSchedule, Mixup, OnlineNC

    new = (LossSchedule, Mixup, OnlineNC)
    out = {n: {} for n, h in zip(hook_names(hooks), hooks) if isinstance(h, new)}
    out.update(zip([n for n, h in zip(hook_names(hooks), hooks) if not isinstance(h, new)], states))
    if "OnlineNC" in out and "online_stats" in state:
        out["OnlineNC"] = {"stats": state["online_stats"], "loss": state["online_loss"]}
    return out
