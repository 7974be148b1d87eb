"""Feature files: read a saved ``.npz`` or ``.pt`` file safely and measure neural collapse on it.

A feature file holds ``features`` (N x d), ``labels`` (N) and optionally ``weights`` (K x d), ``bias`` (K)
and ``counts`` (K, the training counts for the many/medium/few groups). Only numeric arrays are loaded:
``torch.load(weights_only=True)`` and ``numpy.load(allow_pickle=False)``, so a file cannot run code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nclab.errors import DataError

REQUIRED = ("features", "labels")


def load_feature_file(path: str | Path) -> dict[str, Any]:
    """Read a .npz or .pt feature file into a dict of tensors (numpy arrays accepted here only)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"cannot read {str(p)!r}: no such file")
    if p.suffix not in (".npz", ".pt", ".pth"):
        raise DataError(f"{str(p)!r}: unknown format {p.suffix!r}; use .npz or .pt")
    if not zipfile.is_zipfile(p):  # both numpy.savez and torch.save write zip archives
        writer = "numpy.savez" if p.suffix == ".npz" else "torch.save"
        raise DataError(
            f"cannot read {str(p)!r}: it is not a {p.suffix} (zip) archive, so it is truncated or in another "
            f"format; write it with {writer}(path, features=..., labels=...)"
        )
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        else:
            raw = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's weights-only unpickler refused an object
        raise DataError(
            f"cannot read {str(p)!r}: it holds Python objects that loading would have to execute; nclab "
            "loads only tensors: save a dict of tensors with torch.save"
        ) from None
    except ValueError as err:
        if "pickle" in str(err) or "Object arrays" in str(err):  # numpy: an object array in the archive
            raise DataError(
                f"cannot read {str(p)!r}: it holds object arrays (pickled Python objects), which nclab does "
                "not load; save numeric arrays (features float, labels int) with numpy.savez"
            ) from None
        raise DataError(f"cannot read {str(p)!r}: {type(err).__name__}: {err}") from None
    except Exception as err:  # a damaged archive
        raise DataError(f"cannot read {str(p)!r}: {type(err).__name__}: {err}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{str(p)!r} must hold a dict of arrays, got {type(raw).__name__}")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise DataError(
            f"{str(p)!r} lacks key(s) {', '.join(missing)}; it has: {', '.join(sorted(raw)) or 'none'}"
        )
    out = {}
    for k, v in raw.items():
        if isinstance(v, torch.Tensor):
            out[k] = v
            continue
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":  # strings, objects, complex, dates
            hint = (
                ": encode the class names as integers 0..K-1, e.g. "
                "names, labels = numpy.unique(labels, return_inverse=True)"
                if k == "labels" and a.dtype.kind in "USO"
                else ""
            )
            raise DataError(f"{str(p)!r}: {k!r} must be numeric, got dtype {a.dtype}{hint}")
        out[k] = torch.as_tensor(a)
    return out


def measure_file(
    path: str | Path,
    *,
    center: str = "weighted",
    counts_key: str = "counts",
    allow_missing: bool = False,
    rcond: float | None = None,
) -> dict[str, Any]:
    """:func:`nclab.metrics.measure` on a feature file (:func:`load_feature_file`), with elapsed time on
    stderr for large files.

    Args:
        path: the ``.npz`` or ``.pt`` file.
        center, allow_missing, rcond: as for :func:`nclab.metrics.measure`.
        counts_key: the key of the training counts; absent is fine for the default ``"counts"``, an
            error for any other key.

    Raises:
        DataError: the file is missing, unreadable or lacks a key (see :func:`load_feature_file`).
    """
    from nclab.metrics.measure import measure
    from nclab.progress import busy

    with busy(f"nclab measure: reading {path}"):  # large files: elapsed time on stderr
        data = load_feature_file(path)
    counts = data.get(counts_key)
    if counts_key != "counts" and counts is None:
        raise DataError(f"{str(path)!r} has no key {counts_key!r}")
    feats = data["features"]
    if feats.is_floating_point() and feats.dtype not in (torch.float32, torch.float64):
        feats = feats.float()
    with busy(f"nclab measure: {feats.shape[0]} x {feats.shape[1]} features"):
        return measure(
            feats,
            data["labels"],
            data.get("weights"),
            data.get("bias"),
            center=center,
            counts=None if counts is None else counts.tolist(),
            allow_missing=allow_missing,
            rcond=rcond,
        )
