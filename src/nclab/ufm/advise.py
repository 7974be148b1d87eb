"""``nclab ufm advise``: weight decay and oversampling against minority collapse.

From Hong and Ling's convex program (papers.md section 5) and the thresholds derived in
:mod:`nclab.ufm.theory`: a group of >= 2 classes sharing the count n_g has its columns of Z coincide
(minority collapse) exactly when lam >= sqrt(n_g)/N, and Z = 0 for lam >= the zero threshold.
Classes whose count no other class shares cannot collapse among themselves (threshold inf).

Network weight decays map to lam with :func:`nclab.ufm.ufm_to_convex_lambda` (lam = sqrt(lambda_W
lambda_H)); in a network lambda_W is the classifier's weight decay and lambda_H stands for the decay
acting on the features, which only the UFM has: nclab uses the backbone's weight decay for it. That
mapping is a model, not an identity; docs/ufm.md says what it does and does not predict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nclab.data.profiles import given
from nclab.errors import NclabError
from nclab.ufm.convex import ufm_to_convex_lambda
from nclab.ufm.theory import group_collapse_threshold, zero_threshold


@dataclass
class Advice:
    """What :func:`advise` returns (``to_dict`` for JSON)."""

    lam: float
    counts: list[int]
    collapsed: list[list[int]]
    thresholds: list[float]
    max_safe_lam: float
    zero_lam: float
    oversample: float | None
    advised_counts: list[int] | None
    max_safe_weight_decay: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["thresholds"] = [t if math.isfinite(t) else "inf" for t in self.thresholds]
        return d


def _groups(counts: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k, n in enumerate(counts):
        out.setdefault(n, []).append(k)
    return out


def class_thresholds(counts: Sequence[int], lambda_b: float = 0.0) -> tuple[list[float], float]:
    """Per-class collapse thresholds (inf where none before Z = 0) and the zero threshold."""
    c = given(counts)
    big_n = sum(c)
    zero = zero_threshold(c, lambda_b)
    thr = [math.inf] * len(c)
    for n, members in _groups(c).items():
        if len(members) >= 2:
            t = group_collapse_threshold(n, big_n)
            if t < zero * (1 - 1e-9):  # the largest group reaches its threshold with Z = 0
                for k in members:
                    thr[k] = t
    return thr, zero


def collapsed_groups(counts: Sequence[int], lam: float, lambda_b: float = 0.0) -> list[list[int]]:
    """Groups of classes whose columns of Z coincide at ``lam`` (all classes when Z = 0)."""
    c = given(counts)
    thr, zero = class_thresholds(c, lambda_b)
    if lam >= zero:
        return [list(range(len(c)))]
    return [m for n, m in sorted(_groups(c).items()) if len(m) >= 2 and thr[m[0]] <= lam]


def _is_safe(counts: list[int], lam: float, lambda_b: float) -> bool:
    return not collapsed_groups(counts, lam, lambda_b)


def advise(
    counts: Sequence[int],
    *,
    lam: float | None = None,
    lambda_w: float | None = None,
    lambda_h: float | None = None,
    lambda_b: float = 0.0,
) -> Advice:
    """Advice against minority collapse for ``counts`` at ``lam`` (or at the network's weight decays).

    Args:
        counts: training counts per class (>= 2 classes, positive).
        lam: the convex program's lambda; or give ``lambda_w`` and ``lambda_h`` instead.
        lambda_b: the program's bias penalty.

    Returns:
        :class:`Advice`: ``collapsed`` groups at lam, per-class ``thresholds``, ``max_safe_lam`` (the
        supremum of safe lambdas: collapse starts at it), ``zero_lam``, ``oversample`` (smallest common
        multiplier r >= 1 of the collapsed classes' counts that leaves nothing collapsed at lam; 1.0
        when nothing is collapsed; None when no r can) with ``advised_counts`` (rounded up), and
        ``max_safe_weight_decay`` (when weight decays were given: the largest common scale s of
        lambda_W and lambda_H that is safe, and the decays s*lambda_W, s*lambda_H).
    """
    c = given(counts)
    if len(c) < 2:
        raise NclabError("advice needs at least 2 classes")
    if lam is None:
        if lambda_w is None or lambda_h is None:
            raise NclabError("give lam, or both lambda_w and lambda_h")
        if not (lambda_w > 0 and lambda_h > 0):
            raise NclabError(f"weight decays must be > 0, got lambda_w={lambda_w}, lambda_h={lambda_h}")
        lam = ufm_to_convex_lambda(lambda_w, lambda_h)
    if not (lam > 0 and math.isfinite(lam)):
        raise NclabError(f"lambda must be a finite number > 0, got {lam}")
    if lambda_b < 0:
        raise NclabError(f"lambda_b must be >= 0, got {lambda_b}")
    thr, zero = class_thresholds(c, lambda_b)
    collapsed = collapsed_groups(c, lam, lambda_b)
    finite = [t for t in thr if math.isfinite(t)]
    max_safe = min(finite) if finite else zero
    oversample: float | None = 1.0
    advised: list[int] | None = list(c)
    if collapsed:
        members = sorted({k for g in collapsed for k in g})

        def scaled(r: float) -> list[int]:
            return [math.ceil(r * n - 1e-9) if k in members else n for k, n in enumerate(c)]

        oversample, advised = None, None
        lo = 1.0
        r = 1.0
        while r < 1e6:
            r *= 1.25
            if _is_safe(scaled(r), lam, lambda_b):
                hi = r
                for _ in range(60):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (lo, mid) if _is_safe(scaled(mid), lam, lambda_b) else (mid, hi)
                oversample, advised = hi, scaled(hi)
                break
            lo = r
    safe_wd = None
    if lambda_w is not None and lambda_h is not None:
        s = max_safe / lam
        safe_wd = {"scale": s, "lambda_w": s * lambda_w, "lambda_h": s * lambda_h}
    return Advice(lam, c, collapsed, thr, max_safe, zero, oversample, advised, safe_wd)
