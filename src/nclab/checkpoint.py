"""Checkpoints: written atomically, loaded without unpickling arbitrary objects.

:func:`save_atomic` writes to ``.<name>.tmp-<pid>`` in the same directory, fsyncs and ``os.replace``-s,
so ``last.pt`` is always a complete checkpoint (a temporary left by a kill is removed on the next
start, :meth:`nclab.rundir.RunDir.remove_stale_temporaries`). A checkpoint holds only tensors and plain
containers of primitives (``dict``, ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``,
``None``); :func:`save_atomic` refuses anything else, so that :func:`load` can use
``torch.load(weights_only=True)``, which never executes code from the file. RNG states are
``uint8`` tensors (``torch.get_rng_state()``); a NumPy RNG state would be stored as its
``bit_generator.state`` dict of ints.

Only :class:`nclab.rundir.RunDir` saves and loads (``save_checkpoint`` / ``load_checkpoint``); the
training hooks' states inside a checkpoint are keyed by :mod:`nclab.train.hook_state`.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from nclab.errors import DataError

_PLAIN = (str, int, float, bool, type(None))  # exact types: numpy.float64 is a float but pickles as numpy
_TORCH = (torch.Tensor, torch.Size, torch.dtype, torch.device)


def check_safe(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` if ``obj`` holds anything but tensors and plain containers of primitives.

    Such an object could not be loaded back with ``weights_only=True``; convert it on save (a NumPy
    array to a tensor, a ``Generator`` to its state, a set to a sorted list, ``numpy.float64`` to
    ``float``).
    """
    if type(obj) in _PLAIN or isinstance(obj, _TORCH):
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            check_safe(k, f"{where} key")
            check_safe(v, f"{where}[{k!r}]")
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_safe(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint may hold only tensors "
        "and dicts/lists/tuples of str/int/float/bool/None (convert it to one of those on save)"
    )


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save ``obj`` to ``path`` so that a crash never leaves a partial file behind.

    Raises:
        TypeError: ``obj`` holds an object :func:`load` could not read back safely (see
            :func:`check_safe`).
    """
    check_safe(obj)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path: str | Path, *, required: Iterable[str] = ()) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic`, without unpickling arbitrary objects.

    Args:
        path: the ``.pt`` file.
        required: keys the checkpoint must have.

    Raises:
        DataError: the file is missing, empty, truncated or not a checkpoint; it holds objects that
            ``weights_only`` loading refuses (not written by this nclab version, or tampered with); or
            a required key is missing.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"cannot resume: {p} does not exist")
    if p.stat().st_size == 0:
        raise DataError(_damaged(p, "it is empty"))
    if not zipfile.is_zipfile(p):  # torch.save's format; a cut-off zip has no central directory
        raise DataError(_damaged(p, "it is not a complete torch zip archive"))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines()]
        culprit = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), "")
        raise DataError(
            f"{p} cannot be loaded safely: it holds objects that loading would have to execute"
            f"{f' ({culprit})' if culprit else ''}; it was not written by this nclab version or was "
            "tampered with. Start a new run, or load it yourself only if you trust its origin"
        ) from None
    except Exception as err:  # noqa: BLE001 - any other failure to parse the archive
        first = str(err).splitlines()[0] if str(err) else ""
        raise DataError(_damaged(p, f"{type(err).__name__}: {first[:200]}")) from None
    if not isinstance(state, dict):
        raise DataError(f"{p} is not an nclab checkpoint (it holds a {type(state).__name__}, not a dict)")
    missing = [k for k in required if k not in state]
    if missing:
        raise DataError(
            f"{p} is not a checkpoint of this kind of run: it lacks {missing}; it was not written by this "
            "nclab version, or belongs to another command (nclab train / nclab fed)"
        )
    return state


def _damaged(p: Path, why: str) -> str:
    return (
        f"{p} is not a readable checkpoint: {why}. It was truncated or damaged (checkpoints are written "
        "atomically, so this means the file was changed afterwards); restore it from a backup or start "
        "a new run"
    )
