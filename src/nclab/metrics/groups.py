"""Class groups by training count: many (> 100), medium (20..100), few (< 20).

The thresholds follow the long-tailed recognition convention (Liu et al., "Large-Scale Long-Tailed
Recognition in an Open World", CVPR 2019; papers.md section 8) and are configurable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nclab.errors import NclabError

GROUPS = ("many", "medium", "few")


def split_groups(
    counts: Sequence[int] | torch.Tensor, *, many: int = 100, few: int = 20
) -> dict[str, list[int]]:
    """Class indices per group: ``many`` (n > many), ``medium`` (few <= n <= many), ``few`` (n < few).

    Example:
        >>> split_groups([500, 100, 20, 19])
        {'many': [0], 'medium': [1, 2], 'few': [3]}
    """
    if few > many:
        raise NclabError(f"group thresholds need few <= many, got few={few}, many={many}")
    c = [int(x) for x in (counts.tolist() if isinstance(counts, torch.Tensor) else counts)]
    return {
        "many": [k for k, n in enumerate(c) if n > many],
        "medium": [k for k, n in enumerate(c) if few <= n <= many],
        "few": [k for k, n in enumerate(c) if n < few],
    }
