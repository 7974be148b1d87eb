"""Errors raised by nclab.

Every error a user can cause is an :class:`NclabError` (a ``ValueError``) whose message says what was
received and what to fix. The CLI prints such errors as one line and exits with code 2.
"""

from __future__ import annotations


class NclabError(ValueError):
    """Base class of every user-facing nclab error."""


class ShapeError(NclabError):
    """A tensor has the wrong shape or the shapes of several inputs disagree."""


class DTypeError(NclabError):
    """A tensor has the wrong dtype (for example float labels)."""


class NonFiniteError(NclabError):
    """An input contains NaN or Inf."""


class MissingClassError(NclabError):
    """A class has no samples (pass ``allow_missing=True`` to measure anyway)."""


class DegenerateError(NclabError):
    """The data is degenerate for the requested quantity (for example all class means equal)."""


class ConfigError(NclabError):
    """A configuration key or value is invalid."""


class DataError(NclabError):
    """A data file is missing, unreadable, truncated or corrupt."""


class RegistryError(NclabError):
    """An unknown or duplicate registry name."""
