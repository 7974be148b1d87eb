"""Samplers: per-epoch index orders, deterministic in (seed, epoch), for exact resume.

Each sampler's ``indices(epoch)`` returns N = len(labels) training indices for that epoch; under
DDP rank r of W takes ``indices(epoch)[r::W]`` (the trainer pads nothing: the last ranks may get one
index fewer). Class probabilities for an epoch:

- ``instance``: every sample once (a permutation); class k with probability n_k/N.
- ``class_balanced``: class uniform (1/K), then a sample of it uniformly, with replacement
  (Kang et al., ICLR 2020, "Decoupling representation and classifier").
- ``square_root``: class probability proportional to sqrt(n_k) (Mahajan et al. 2018; Kang et al. 2020).
- ``progressive``: p_k(t) = (1 - t/T) n_k/N + (t/T)/K over epochs t of T (Kang et al. 2020).
- ``drs``: deferred re-sampling (Cao et al., NeurIPS 2019): instance before ``start_epoch``, class-
  balanced from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nclab.errors import ConfigError
from nclab.registry import Registry

SAMPLERS: Registry = Registry("sampler")


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class Sampler:
    """Base: ``class_probs(epoch)`` (None = plain permutation) defines the epoch's draw."""

    def __init__(self, labels: torch.Tensor, counts: Sequence[int], *, seed: int = 0):
        self.labels = torch.as_tensor(labels).long().cpu()  # index orders are drawn on the host
        self.counts = torch.as_tensor(list(counts), dtype=torch.float64)
        if len(self.labels) == 0 or (self.counts <= 0).any():
            raise ConfigError("samplers need labels and positive class counts")
        self.seed = int(seed)
        order = torch.argsort(self.labels, stable=True)
        self._by_class = torch.split(order, torch.bincount(self.labels, minlength=len(self.counts)).tolist())

    def __len__(self) -> int:
        return len(self.labels)

    def class_probs(self, epoch: int) -> torch.Tensor | None:
        return None

    def indices(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(_seed(self.seed, epoch, 11))
        p = self.class_probs(epoch)
        if p is None:
            return torch.randperm(len(self.labels), generator=g)
        cls = torch.multinomial(p.float(), len(self.labels), replacement=True, generator=g)
        out = torch.empty(len(self.labels), dtype=torch.long)
        for k in range(len(self.counts)):
            where = (cls == k).nonzero().flatten()
            if len(where):
                pick = torch.randint(0, len(self._by_class[k]), (len(where),), generator=g)
                out[where] = self._by_class[k][pick]
        return out


class ClassBalanced(Sampler):
    def class_probs(self, epoch):
        return torch.full_like(self.counts, 1.0 / len(self.counts))


class SquareRoot(Sampler):
    def class_probs(self, epoch):
        s = self.counts.sqrt()
        return s / s.sum()


class Progressive(Sampler):
    def __init__(self, labels, counts, *, seed=0, epochs: int = 1):
        super().__init__(labels, counts, seed=seed)
        if epochs < 1:
            raise ConfigError("progressive sampling needs epochs >= 1")
        self.epochs = int(epochs)

    def class_probs(self, epoch):
        t = min(epoch / max(self.epochs - 1, 1), 1.0)
        return (1 - t) * self.counts / self.counts.sum() + t / len(self.counts)


class Deferred(Sampler):
    def __init__(self, labels, counts, *, seed=0, start_epoch: int = 0):
        super().__init__(labels, counts, seed=seed)
        self.start_epoch = int(start_epoch)

    def class_probs(self, epoch):
        return None if epoch < self.start_epoch else torch.full_like(self.counts, 1.0 / len(self.counts))


@SAMPLERS.register
def instance(labels, counts, *, seed=0) -> Sampler:
    return Sampler(labels, counts, seed=seed)


@SAMPLERS.register
def class_balanced(labels, counts, *, seed=0) -> Sampler:
    return ClassBalanced(labels, counts, seed=seed)


@SAMPLERS.register
def square_root(labels, counts, *, seed=0) -> Sampler:
    return SquareRoot(labels, counts, seed=seed)


@SAMPLERS.register
def progressive(labels, counts, *, seed=0, epochs: int = 1) -> Sampler:
    return Progressive(labels, counts, seed=seed, epochs=epochs)


@SAMPLERS.register
def drs(labels, counts, *, seed=0, start_epoch: int = 0) -> Sampler:
    return Deferred(labels, counts, seed=seed, start_epoch=start_epoch)


def create_sampler(
    name: str, labels: torch.Tensor, counts: Sequence[int], *, seed: int = 0, **params: Any
) -> Sampler:
    """The sampler registered as ``name`` (instance, class_balanced, square_root, progressive, drs).

    ``params`` are the sampler's options (``epochs`` for progressive, ``start_epoch`` for drs); an
    option the sampler does not take raises, naming the accepted ones.
    """
    return SAMPLERS.create(name, labels, counts, seed=seed, **params)
