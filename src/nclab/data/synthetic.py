"""Synthetic class-conditional Gaussian mixtures with any count profile (for tests and quick runs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nclab.data.profiles import given


def gaussian_mixture(
    counts: Sequence[int],
    dim: int,
    *,
    separation: float = 3.0,
    noise: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``counts[k]`` samples of class k from N(separation * c_k, noise^2 I).

    The class centres c_k are i.i.d. standard normal directions scaled to unit norm, drawn from a
    generator seeded with ``seed`` (reproducible, no global RNG).

    Returns:
        features ``(N, dim)`` and int64 labels ``(N,)``, classes in order.
    """
    counts = given(counts)
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(len(counts), dim, generator=g, dtype=torch.float64)
    centres = centres / centres.norm(dim=1, keepdim=True)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    feats = separation * centres[labels] + noise * torch.randn(
        len(labels), dim, generator=g, dtype=torch.float64
    )
    return feats.to(dtype), labels
