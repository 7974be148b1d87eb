"""Independent references and file writers for the data tests (also used by tests in other packages)."""

import gzip
import struct
from pathlib import Path

import numpy as np


def ldam_reference(targets, counts, seed):
    """The LDAM-DRW code's rule, written with numpy's *global* seed as that code does."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        kept = []
        for c, n in enumerate(counts):
            idx = np.where(np.asarray(targets) == c)[0]
            np.random.shuffle(idx)
            kept.extend(idx[:n].tolist())
        return np.array(kept)
    finally:
        np.random.set_state(state)


def write_idx(path: Path, arr: np.ndarray) -> None:
    """A gzipped IDX file of unsigned bytes (the Fashion-MNIST format), written from its specification."""
    header = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())
