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
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nclab.data.profiles import given
from nclab.errors import NclabError
from nclab.progress import progress
from nclab.ufm.convex import ufm_to_convex_lambda
from nclab.ufm.theory import group_collapse_threshold


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


def grouped_zero_threshold(sizes: dict[int, int], lambda_b: float = 0.0) -> float:
    """:func:`nclab.ufm.theory.zero_threshold` from the distinct counts: O(J^3) for J counts, not O(K^3).

    ``sizes`` maps each count n_g to its number of classes m_g. The gradient at Z = 0 is
    G = (p 1^T - I) S with S = diag(sqrt(n_k)/N) and p = softmax(b*), both constant on a group (b* is
    unique and the program is symmetric within a group). G maps the contrast vectors of a group
    (supported on it, summing to 0) to -s_g times themselves, and the group-constant vectors to
    themselves; in the orthonormal basis 1_g / sqrt(m_g) it is the J x J matrix
    B = (p_g sqrt(m_g)) (s_h sqrt(m_h))^T - diag(s_g). So ||G||_2 = max(||B||_2, max_{m_g >= 2} s_g), and
    ||B||_2 costs O(J) per bisection step (:func:`_rank_one_minus_diag_norm`).

    Example:
        >>> from nclab.ufm.theory import zero_threshold
        >>> a, b = grouped_zero_threshold({100: 3, 4: 2}, 0.1), zero_threshold([100] * 3 + [4] * 2, 0.1)
        >>> abs(a - b) < 1e-12
        True
    """
    n = np.array(list(sizes), dtype=np.float64)  # (J,) distinct counts
    m = np.array([sizes[c] for c in sizes], dtype=np.float64)  # (J,) classes per count
    big_n = float((n * m).sum())
    p = _grouped_bias_softmax(n, m, big_n, lambda_b)  # (J,) per-class softmax(b*) of each group
    s = np.sqrt(n) / big_n
    norm = _rank_one_minus_diag_norm(p * np.sqrt(m), s * np.sqrt(m), s)
    shared = s[m >= 2]
    return max(norm, float(shared.max())) if len(shared) else norm


def _rank_one_minus_diag_norm(u: np.ndarray, v: np.ndarray, d: np.ndarray) -> float:
    """||u v^T - diag(d)||_2 in O(J) per step: bisection on the eigenvalue count of M = B^T B.

    M = D^2 + X C X^T with X = [v, D u] (J, 2) and C = [[|u|^2, -1], [-1, 0]]. By Haynsworth's inertia
    additivity on [[D^2 - t, X], [X^T, -C^-1]], the number of eigenvalues of M above t (t no d_i^2) is
    #{d_i^2 > t} + #positive eigenvalues of (-C^-1 - X^T (D^2 - t)^-1 X) - 1, since -C^-1 =
    [[0, 1], [1, |u|^2]] has exactly one positive eigenvalue. Bisect t between the largest diagonal
    entry of M (a lower bound of its top eigenvalue) and max d^2 + ||X C X^T|| (an upper bound).
    """
    d2 = d * d
    uu = float(u @ u)
    x = np.stack([v, d * u], 1)  # (J, 2)
    diag_m = d2 + uu * v * v - 2 * v * d * u
    lo = float(diag_m.max())
    hi = float(d2.max()) + uu * float(v @ v) + 2 * float(np.linalg.norm(v) * np.linalg.norm(d * u))
    neg_c_inv = np.array([[0.0, 1.0], [1.0, uu]])

    def above(t: float) -> int:
        while (d2 == t).any():  # the count formula needs t off the diagonal
            t = float(np.nextafter(t, np.inf))
        r = x.T @ (x / (d2 - t)[:, None])  # (2, 2)
        sm = neg_c_inv - r
        tr, det = float(sm[0, 0] + sm[1, 1]), float(sm[0, 0] * sm[1, 1] - sm[0, 1] * sm[1, 0])
        pos = 1 if det < 0 else (2 if tr > 0 else 0)
        return int((d2 > t).sum()) + pos - 1

    for _ in range(200):
        if hi - lo <= 1e-15 * hi:
            break
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if above(mid) >= 1 else (lo, mid)
    return math.sqrt(0.5 * (lo + hi))


def _grouped_bias_softmax(n: np.ndarray, m: np.ndarray, big_n: float, lambda_b: float) -> np.ndarray:
    """softmax(b*) per class of each group, b* minimising (1/N) sum_k n_k (lse(b) - b_k) + lambda_b ||b||^2.

    Newton's method on the group values beta_g (b_k = beta_g): the gradient and Hessian in beta are
    diag(m) times q - n/N + 2 lambda_b beta and diag(q + 2 lambda_b) - q (m q)^T, q = e^beta / sum m e^beta.
    """
    if lambda_b == 0:
        return n / big_n
    def softmax(beta: np.ndarray) -> np.ndarray:
        z = beta + np.log(m)
        top = z.max()
        return np.exp(beta - top - np.log(np.exp(z - top).sum()))

    beta = np.zeros_like(n)
    for _ in range(100):
        q = softmax(beta)
        g = q - n / big_n + 2 * lambda_b * beta
        h = np.diag(q + 2 * lambda_b) - np.outer(q, m * q)
        step = np.linalg.solve(h, g)
        beta = beta - step
        if float(np.abs(step).max()) < 1e-15:
            break
    return softmax(beta)


def _group_thresholds(sizes: dict[int, int], zero: float) -> dict[int, float]:
    """Collapse threshold sqrt(n_g)/N of each count shared by >= 2 classes that comes before Z = 0."""
    big_n = sum(n * k for n, k in sizes.items())
    out = {}
    for n, k in sizes.items():
        t = group_collapse_threshold(n, big_n)
        if k >= 2 and t < zero * (1 - 1e-9):  # the largest group reaches its threshold with Z = 0
            out[n] = t
    return out


def class_thresholds(counts: Sequence[int], lambda_b: float = 0.0) -> tuple[list[float], float]:
    """Per-class collapse thresholds (inf where none before Z = 0) and the zero threshold."""
    c = given(counts)
    sizes = Counter(c)
    zero = grouped_zero_threshold(sizes, lambda_b)
    thr = _group_thresholds(sizes, zero)
    return [thr.get(n, math.inf) for n in c], zero


def collapsed_groups(counts: Sequence[int], lam: float, lambda_b: float = 0.0) -> list[list[int]]:
    """Groups of classes whose columns of Z coincide at ``lam`` (all classes when Z = 0)."""
    c = given(counts)
    sizes = Counter(c)
    zero = grouped_zero_threshold(sizes, lambda_b)
    if lam >= zero:
        return [list(range(len(c)))]
    thr = _group_thresholds(sizes, zero)
    return [members for n, members in sorted(_groups(c).items()) if thr.get(n, math.inf) <= lam]


def _is_safe(sizes: dict[int, int], lam: float, lambda_b: float) -> bool:
    """Nothing collapsed at ``lam``; the zero threshold is computed only when the group thresholds do
    not settle it (a shared count's s_g = sqrt(n_g)/N is a singular value of G, so lam < s_g < zero)."""
    big_n = sum(n * k for n, k in sizes.items())
    shared = [group_collapse_threshold(n, big_n) for n, k in sizes.items() if k >= 2]
    if shared and lam < min(shared):
        return True
    zero = grouped_zero_threshold(sizes, lambda_b)
    return lam < zero and all(t >= zero * (1 - 1e-9) for t in shared if t <= lam)


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
        members = {n for g in collapsed for n in {c[k] for k in g}}  # the collapsed counts
        sizes = Counter(c)

        def scaled(r: float) -> dict[int, int]:  # class sizes after oversampling the collapsed counts by r
            out: Counter[int] = Counter()
            for n, k in sizes.items():
                out[math.ceil(r * n - 1e-9) if n in members else n] += k
            return out

        oversample, advised = None, None
        lo = 1.0
        r = 1.0
        with progress(desc="advise: oversampling search", unit="step") as bar:
            while r < 1e6:
                r *= 1.25
                bar.update()
                if _is_safe(scaled(r), lam, lambda_b):
                    hi = r
                    for _ in range(60):
                        mid = 0.5 * (lo + hi)
                        lo, hi = (lo, mid) if _is_safe(scaled(mid), lam, lambda_b) else (mid, hi)
                        bar.update()
                    oversample = hi
                    advised = [math.ceil(hi * n - 1e-9) if n in members else n for n in c]
                    break
                lo = r
    safe_wd = None
    if lambda_w is not None and lambda_h is not None:
        s = max_safe / lam
        safe_wd = {"scale": s, "lambda_w": s * lambda_w, "lambda_h": s * lambda_h}
    return Advice(lam, c, collapsed, thr, max_safe, zero, oversample, advised, safe_wd)
