"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) from its four IDX ``.gz`` files, long-tailed on demand.

Root: the ``root`` argument, else ``$NCLAB_DATA/fashion-mnist``, else ``/usr/share/datasets/fashion-mnist``
(Debian's ``dataset-fashion-mnist``). Files are checked (magic numbers, sizes) and never partially
loaded.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from nclab.data.base import LTDataset, lt_select
from nclab.data.profiles import exponential, step
from nclab.errors import DataError, NclabError

FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
MEAN, STD = (0.2860,), (0.3530,)


def default_root() -> Path:
    env = os.environ.get("NCLAB_DATA")
    if env and (Path(env) / "fashion-mnist").is_dir():
        return Path(env) / "fashion-mnist"
    return Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes, validating its header and size."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err} (truncated or corrupt file?)") from None
    if len(data) < 4:
        raise DataError(f"{path} is too short to be an IDX file")
    zero, dtype, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype != 0x08 or ndim != expect_dims:
        raise DataError(f"{path}: bad IDX magic number (expected unsigned bytes with {expect_dims} dims)")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    need = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != need:
        raise DataError(f"{path}: size {len(data)} bytes, header says {need}: truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(
    root: str | Path | None = None, *, train: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The full split: images (N, 28, 28) uint8 and labels (N,)."""
    base = Path(root) if root is not None else default_root()
    paths = [base / f for f in FILES[train]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST not found: missing {', '.join(missing)}. Install Debian's package "
            "`dataset-fashion-mnist` (apt-get install dataset-fashion-mnist), or put the four IDX .gz "
            "files in a directory given as data.root or $NCLAB_DATA/fashion-mnist"
        )
    images = read_idx(paths[0], 3)
    labels = read_idx(paths[1], 1).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{base}: {len(images)} images but {len(labels)} labels")
    return images, labels


def fashion_mnist_lt(
    root: str | Path | None,
    imbalance: float,
    *,
    profile: str = "exp",
    seed: int = 0,
    train: bool = True,
    minority_fraction: float = 0.5,
) -> LTDataset:
    """Fashion-MNIST-LT: the training split made long-tailed by the LDAM-DRW rule (class 0 the head).

    Args:
        root: directory with the IDX files (None: the default root, see the module docstring).
        imbalance: IF = n_max / n_min (1 = the full balanced split).
        profile: ``"exp"`` (exponential) or ``"step"``.
        seed: seed of the selection.
        train: False returns the full balanced test split (the profile is not applied).
    """
    images, labels = load_fashion_mnist(root, train=train)
    if not train or imbalance == 1:
        idx = np.arange(len(labels))
    else:
        n_max = int(np.bincount(labels).min())
        if profile == "exp":
            counts = exponential(n_max, 10, imbalance)
        elif profile == "step":
            counts = step(n_max, 10, imbalance, minority_fraction)
        else:
            raise NclabError(f"profile must be 'exp' or 'step', got {profile!r}")
        idx = lt_select(labels, counts, seed)
    y = torch.from_numpy(labels[idx])
    return LTDataset(
        images=torch.from_numpy(np.ascontiguousarray(images[idx])),
        labels=y,
        indices=torch.from_numpy(idx.astype(np.int64)),
        counts=torch.bincount(y, minlength=10).tolist(),
        class_names=list(CLASSES),
        mean=MEAN,
        std=STD,
        name=f"fashion-mnist-lt{'' if train else '-test'}",
    )
