"""Long-tailed class-count profiles, shared by the UFM and by training.

- :func:`exponential`: the LDAM-DRW rule (Cao et al., NeurIPS 2019, papers.md section 9),
  ``n_i = int(n_max * (1/IF) ** (i / (K-1)))``, class 0 the head.
- :func:`step`: the "(R, rho)-STEP" profile (Thrampoulidis et al., NeurIPS 2022; Cao et al. 2019):
  the first ``(1 - minority_fraction) * K`` classes get ``n_max``, the rest ``int(n_max / R)``.
- :func:`given`: an explicit list, validated.
- :func:`parse_counts`: the CLI's ``500x5,100x5`` notation.
"""

from __future__ import annotations

from collections.abc import Sequence

from nclab.errors import NclabError


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NclabError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_imbalance(imbalance: float) -> float:
    if not (float(imbalance) >= 1.0):
        raise NclabError(f"imbalance factor must be >= 1, got {imbalance!r}")
    return float(imbalance)


def exponential(n_max: int, num_classes: int, imbalance: float) -> list[int]:
    """Exponential profile of the LDAM-DRW code: ``n_i = int(n_max * (1/IF)^(i/(K-1)))``.

    Args:
        n_max: samples of the head class (class 0).
        num_classes: K.
        imbalance: IF = n_max / n_min (>= 1).

    Returns:
        K counts, non-increasing.

    Example:
        >>> exponential(5000, 10, 100)
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    _check_positive_int("n_max", n_max)
    _check_positive_int("num_classes", num_classes)
    imb = _check_imbalance(imbalance)
    if num_classes == 1:
        return [n_max]
    counts = [int(n_max * (1.0 / imb) ** (i / (num_classes - 1.0))) for i in range(num_classes)]
    if min(counts) < 1:
        raise NclabError(
            f"imbalance {imbalance} leaves classes with 0 samples at n_max={n_max}; "
            "lower the imbalance or raise n_max"
        )
    return counts


def step(n_max: int, num_classes: int, imbalance: float, minority_fraction: float = 0.5) -> list[int]:
    """STEP profile: the first ``K - round(minority_fraction*K)`` classes have ``n_max`` samples,
    the remaining minority classes ``int(n_max / imbalance)``.

    Example:
        >>> step(500, 4, 10)
        [500, 500, 50, 50]
    """
    _check_positive_int("n_max", n_max)
    _check_positive_int("num_classes", num_classes)
    imb = _check_imbalance(imbalance)
    if not 0.0 <= minority_fraction <= 1.0:
        raise NclabError(f"minority_fraction must be in [0, 1], got {minority_fraction!r}")
    k_minor = int(round(minority_fraction * num_classes))
    n_minor = int(n_max / imb)
    if k_minor and n_minor < 1:
        raise NclabError(f"imbalance {imbalance} leaves minority classes with 0 samples")
    return [n_max] * (num_classes - k_minor) + [n_minor] * k_minor


def given(counts: Sequence[int]) -> list[int]:
    """Validate an explicit list of per-class counts (positive integers, at least one class)."""
    out = list(counts)
    if not out:
        raise NclabError("counts must name at least one class")
    for i, c in enumerate(out):
        if isinstance(c, bool) or int(c) != c or c < 1:
            raise NclabError(f"counts[{i}] must be a positive integer, got {c!r}")
    return [int(c) for c in out]


def parse_counts(text: str) -> list[int]:
    """Parse ``"500x5,100x5"`` (count x repeats, comma separated) or ``"5,4,3"``.

    Example:
        >>> parse_counts("500x2,100")
        [500, 500, 100]
    """
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "x" in part:
                n, r = part.split("x", 1)
                out.extend([int(n)] * int(r))
            else:
                out.append(int(part))
        except ValueError:
            raise NclabError(
                f"cannot parse counts {text!r}: use COUNTxREPEATS items separated by commas, e.g. 500x5,100x5"
            ) from None
    return given(out)
