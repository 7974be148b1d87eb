"""CIFAR-10/100-LT read from the standard python-pickle directories, without torchvision.

``cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta) and ``cifar-100-python``
(train, test, meta), as distributed by Krizhevsky (2009). The long-tailed subset follows the
LDAM-DRW rule exactly (papers.md section 9, :func:`nclab.data.base.lt_select`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from nclab.data.base import LTDataset, lt_select
from nclab.data.profiles import exponential
from nclab.errors import DataError, NclabError

SPECS = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        b"labels",
        b"label_names",
        10,
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", b"fine_label_names", 100),
}
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays only: a crafted file cannot run code."""

    SAFE = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.SAFE:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"missing {path}: download the python version of CIFAR and extract it under root")
    try:
        with open(path, "rb") as fh:
            return _ArraysOnly(fh, encoding="bytes").load()
    except Exception as err:
        raise DataError(f"cannot read {path}: {type(err).__name__}: {err} (truncated or corrupt?)") from None


def load_cifar(
    root: str | Path, name: str, *, train: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, 32, 32, 3) uint8 in file order, labels (N,), class names."""
    if name not in SPECS:
        raise NclabError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    folder, train_files, test_files, meta, label_key, names_key, k = SPECS[name]
    base = Path(root) / folder
    if not base.is_dir():
        raise DataError(f"{base} does not exist: extract the python version of {name.upper()} into {root}")
    xs, ys = [], []
    for f in train_files if train else test_files:
        d = _unpickle(base / f)
        try:
            data = np.asarray(d[b"data"], dtype=np.uint8)
            labels = np.asarray(d[label_key], dtype=np.int64)
        except KeyError as err:
            raise DataError(f"{base / f} lacks key {err}") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise DataError(
                f"{base / f}: data has shape {data.shape} for {len(labels)} labels, expected (N, 3072)"
            )
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    names = [n.decode() for n in _unpickle(base / meta).get(names_key, [])] or [str(i) for i in range(k)]
    y = np.concatenate(ys)
    if y.min() < 0 or y.max() >= k:
        raise DataError(f"{base}: labels outside [0, {k})")
    return np.ascontiguousarray(np.concatenate(xs)), y, names


def cifar_lt(
    root: str | Path, name: str, imbalance: float, *, seed: int = 0, train: bool = True
) -> LTDataset:
    """CIFAR-10-LT / CIFAR-100-LT with the LDAM-DRW selection (train) or the full test split.

    n_i = int(n_max (1/IF)^(i/(K-1))), n_max the per-class count of the split (5000 or 500).
    """
    images, labels, names = load_cifar(root, name, train=train)
    k = SPECS[name][-1]
    if train and imbalance != 1:
        counts = exponential(int(np.bincount(labels, minlength=k).min()), k, imbalance)
        idx = lt_select(labels, counts, seed)
    else:
        idx = np.arange(len(labels))
    y = torch.from_numpy(labels[idx])
    mean, std = STATS[name]
    return LTDataset(
        images=torch.from_numpy(images[idx]),
        labels=y,
        indices=torch.from_numpy(idx.astype(np.int64)),
        counts=torch.bincount(y, minlength=k).tolist(),
        class_names=names,
        mean=mean,
        std=std,
        name=f"{name}-lt" if train else f"{name}-test",
    )
