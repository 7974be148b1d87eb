"""Name -> factory registries (as timm's ``register_model`` / ``create_model``), stricter.

An unknown name raises :class:`~nclab.errors.RegistryError` listing the available names and close
matches; registering a name twice raises instead of silently overwriting. Factories are strict:
:meth:`Registry.create` checks the keyword arguments against the factory's signature, so a misspelt
option (``model.kwargs.hiddne``) raises naming the accepted options and close matches instead of being
swallowed by a ``**kwargs`` catch-all. Context the caller can supply but not every factory needs (the
input spec: ``in_channels`` for image backbones, ``in_features`` for the MLP) goes in ``_optional`` and
reaches only the factories whose signature names it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping
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

    def create(
        self, name: str, *args: Any, _optional: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """Call the factory registered as ``name`` with ``args`` and ``kwargs``, strictly.

        Args:
            name: a registered name.
            *args: positional arguments (for example the class counts of a loss).
            _optional: context arguments passed only if the factory's signature names them (and
                ``kwargs`` does not set them already); the others are dropped silently.
            **kwargs: options; an option the factory does not take raises.

        Raises:
            RegistryError: unknown ``name``, an unknown option (the message lists the accepted
                options and close matches), or a required argument missing.

        Example:
            >>> reg = Registry("widget")
            >>> @reg.register
            ... def box(*, size=1): return size
            >>> reg.create("box", size=2, _optional={"colour": "red"})
            2
            >>> reg.create("box", szie=2)
            Traceback (most recent call last):
            ...
            nclab.errors.RegistryError: unknown widget option 'szie' for box; accepted: size. Did you mean 'size'?
        """
        fn = self.get(name)
        sig = inspect.signature(fn)
        accepted = self.options(name, n_positional=len(args))
        for key, value in (_optional or {}).items():
            if key in accepted and key not in kwargs:
                kwargs[key] = value
        if not _forwards_anything(sig):
            for key in kwargs:
                if key not in accepted:
                    close = difflib.get_close_matches(key, accepted, n=3)
                    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise RegistryError(
                        f"unknown {self.kind} option {key!r} for {name}; "
                        f"accepted: {', '.join(accepted) or 'none'}.{hint}"
                    )
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise RegistryError(f"{self.kind} {name}: {e}") from None
        return fn(*args, **kwargs)

    def options(self, name: str, *, n_positional: int = 0) -> list[str]:
        """Sorted keyword options of the factory ``name`` (those not filled by ``n_positional`` args)."""
        params = list(inspect.signature(self.get(name)).parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        taken = {p.name for p in positional[:n_positional]}
        return sorted(
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in taken
        )

    def accepts(self, name: str, param: str) -> bool:
        """Whether the factory ``name`` names the keyword argument ``param`` in its signature.

        A ``**kwargs`` catch-all does not count: optional context reaches only the factories that ask for it.
        """
        p = inspect.signature(self.get(name)).parameters.get(param)
        return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _forwards_anything(sig: inspect.Signature) -> bool:
    """Whether ``sig`` has a ``**kwargs`` catch-all (then the callee is trusted to validate)."""
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
