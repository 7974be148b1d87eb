"""Name -> factory registries (as timm's ``register_model`` / ``create_model``), stricter.

An unknown name raises :class:`~nclab.errors.RegistryError` listing the available names and close
matches; registering a name twice raises instead of silently overwriting.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from nclab.errors import RegistryError

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """A named collection of factories.

    Example:
        >>> reg = Registry("widget")
        >>> @reg.register
        ... def small(): return 1
        >>> reg.get("small")()
        1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, F] = {}

    def register(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """Register ``fn`` under ``name`` (default: the function's ``__name__``). Usable as decorator."""

        def deco(f: F) -> F:
            key = name or f.__name__
            if key in self._items:
                raise RegistryError(f"{self.kind} {key!r} is already registered")
            self._items[key] = f
            return f

        return deco(fn) if fn is not None else deco

    def get(self, name: str) -> F:
        """Return the factory registered as ``name``; unknown names raise with the valid ones."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}; available: {', '.join(sorted(self._items))}.{hint}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered as ``name``."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
