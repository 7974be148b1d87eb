"""The dataset type shared by every loader: uint8 images in memory, labels, counts, provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from nclab.errors import NclabError


@dataclass
class LTDataset:
    """A (possibly long-tailed) labelled image set held in memory.

    Attributes:
        images: uint8 tensor, N x H x W (grey) or N x H x W x C, as stored on disk.
        labels: int64 (N,).
        indices: int64 (N,), positions of the samples in the original split.
        counts: samples per class.
        class_names: one name per class.
        mean, std: per-channel normalisation constants (of the full original training split).
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    counts: list[int]
    class_names: list[str]
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    name: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def selection_sha256(self) -> str:
        """SHA-256 of the selected indices (int64, little endian): what a run logs to pin its data."""
        return hashlib.sha256(self.indices.numpy().astype("<i8").tobytes()).hexdigest()


def lt_select(targets: np.ndarray, counts: list[int], seed: int) -> np.ndarray:
    """The LDAM-DRW selection rule (Cao et al., NeurIPS 2019; papers.md section 9).

    With numpy's generator seeded by ``seed`` (a ``RandomState``, the legacy global-seed stream, so no
    global state is touched), for each class in order its indices ``np.where(targets == c)[0]`` are
    shuffled with ``shuffle`` and the first ``counts[c]`` kept; the result lists the kept indices class
    by class in that order.
    """
    rng = np.random.RandomState(seed)
    out = []
    for c, n in enumerate(counts):
        idx = np.where(targets == c)[0]
        if len(idx) < n:
            raise NclabError(f"class {c} has {len(idx)} samples, the profile asks for {n}")
        rng.shuffle(idx)
        out.append(idx[:n])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
