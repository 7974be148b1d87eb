"""Optional extras: one place that imports an optional package or says, in one line, how to get it.

nclab's core needs torch, numpy, torchmetrics, omegaconf, pyyaml and tqdm. Everything else is an
extra of ``pyproject.toml`` and is imported only where it is used, through :func:`require`, so that a
plain ``pip install nclab`` gives, instead of a traceback, one line such as::

    nclab report: error: reports need matplotlib: pip install 'nclab[report]'

and exit code 2 (the CLI prints every :class:`~nclab.errors.NclabError` that way). The CLI also maps
a ``ModuleNotFoundError`` of a package listed in :data:`EXTRAS` that escaped :func:`require` to the
same line (:func:`missing_extra`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from nclab.errors import NclabError

#: top-level module -> (extra of pyproject.toml, package name a user recognises)
EXTRAS: dict[str, tuple[str, str]] = {
    "matplotlib": ("report", "matplotlib"),
    "PIL": ("data", "Pillow"),
    "flwr": ("fed", "Flower"),
    "ray": ("sweep", "Ray"),
    "tensorboard": ("tensorboard", "TensorBoard"),
}


class MissingExtraError(NclabError):
    """An optional package is not installed; the message names the extra that installs it."""


def _message(module: str, extra: str | None, what: str | None) -> str:
    root = module.split(".")[0]
    known_extra, package = EXTRAS.get(root, (None, root))
    extra = extra or known_extra
    fix = f"pip install 'nclab[{extra}]'" if extra else f"pip install {package}"
    return f"{what or 'this command'} need{'' if what and what.endswith('s') else 's'} {package}: {fix}"


def require(module: str, *, extra: str | None = None, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    Args:
        module: dotted module name, e.g. ``"matplotlib.pyplot"`` or ``"flwr.simulation"``.
        extra: the extra of ``nclab`` that installs it (default: looked up in :data:`EXTRAS`).
        what: what needs it, as the start of the message (``"reports"`` -> "reports need ...").

    Returns:
        The imported module.

    Example:
        >>> require("math").sqrt(4.0)
        2.0
        >>> import sys; saved = sys.modules.get("matplotlib"); sys.modules["matplotlib"] = None
        >>> try:
        ...     require("matplotlib", what="reports")
        ... except MissingExtraError as err:
        ...     print(err)
        ... finally:
        ...     sys.modules["matplotlib"] = saved
        ...     _ = saved is None and sys.modules.pop("matplotlib")
        reports need matplotlib: pip install 'nclab[report]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        msg = _message(module, extra, what)
        name = getattr(err, "name", None) or ""
        if name.split(".")[0] != module.split(".")[0]:  # installed, but one of its own imports failed
            msg += f" (importing {module} failed: {err})"
        raise MissingExtraError(msg) from None


def missing_extra(err: ImportError) -> str | None:
    """The one-line message for an ImportError of a known optional package, else None."""
    name = getattr(err, "name", None) or ""
    root = name.split(".")[0]
    if root not in EXTRAS:
        return None
    return _message(root, None, None)
