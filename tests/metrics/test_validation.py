"""Input checks of the metric entry points (metrics/validation.py), each called directly."""

import numpy as np
import pytest
import torch

from nclab.errors import DTypeError, NclabError, NonFiniteError, ShapeError
from nclab.metrics.validation import (
    check_batch_size,
    check_classifier,
    check_counts,
    check_features,
    check_labels,
)


def test_check_features():
    x = torch.zeros(4, 3)
    assert check_features(x) is x
    assert check_features(torch.zeros(0, 3)).shape == (0, 3)
    with pytest.raises(DTypeError, match="torch.Tensor, got ndarray"):
        check_features(np.zeros((4, 3)))
    with pytest.raises(ShapeError, match=r"shape \(N, d\), got \(4,\)"):
        check_features(torch.zeros(4))
    with pytest.raises(DTypeError, match="floating-point"):
        check_features(torch.zeros(4, 3, dtype=torch.int64))
    bad = torch.zeros(4, 3)
    bad[2, 1] = float("nan")
    bad[3, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"emb contain NaN or Inf in 2 row\(s\), first at row 2"):
        check_features(bad, "emb")
    with pytest.raises(NonFiniteError, match="overflow when summed"):
        check_features(torch.full((2, 2), 3e38))  # every value finite, the sum is not


def test_check_labels():
    y = torch.tensor([0, 2, 1], dtype=torch.int32)
    out = check_labels(y, 3, 3)
    assert out.dtype == torch.int64 and out.tolist() == [0, 2, 1]
    assert check_labels(torch.zeros(0, dtype=torch.long), 0, 3).shape == (0,)
    for bad in (torch.tensor([0.0, 1.0, 2.0]), torch.tensor([True, False, True])):
        with pytest.raises(DTypeError, match="integer"):
            check_labels(bad, 3, 3)
    with pytest.raises(DTypeError, match="torch.Tensor"):
        check_labels([0, 1, 2], 3, 3)
    with pytest.raises(ShapeError, match=r"shape \(4,\)"):
        check_labels(y, 4, 3)
    with pytest.raises(ShapeError, match=r"labels must lie in \[0, 2\), found values in \[0, 2\]"):
        check_labels(y, 3, 2)
    with pytest.raises(ShapeError, match=r"W gives K = 2 classes, but labels go up to 2: W must cover"):
        check_labels(y, 3, 2, k_source="W")
    with pytest.raises(ShapeError, match=r"found values in \[-1, 1\]"):  # negative: always the encoding
        check_labels(torch.tensor([-1, 1]), 2, 5, k_source="W")


def test_check_classifier():
    check_classifier(None, None, 3, 2)
    check_classifier(torch.zeros(3, 2), torch.zeros(3), 3, 2)
    with pytest.raises(ShapeError, match=r"\(K, d\) = \(3, 2\), got \(2, 3\)"):
        check_classifier(torch.zeros(2, 3), None, 3, 2)
    with pytest.raises(ShapeError, match="bias given without weights"):
        check_classifier(None, torch.zeros(3), 3, 2)
    with pytest.raises(ShapeError, match=r"bias must have shape \(3,\), got list"):
        check_classifier(torch.zeros(3, 2), [0.0, 0.0, 0.0], 3, 2)
    with pytest.raises(NonFiniteError, match="bias"):
        check_classifier(torch.zeros(3, 2), torch.tensor([0.0, float("nan"), 0.0]), 3, 2)
    with pytest.raises(NonFiniteError, match="weights"):
        check_classifier(torch.full((3, 2), float("inf")), None, 3, 2)


def test_check_batch_size():
    assert check_batch_size(5) == 5 and check_batch_size(np.int64(7)) == 7
    for bad in (0, -3, 2.0, "8", True, None):
        with pytest.raises(
            NclabError, match=f"rows must be a positive integer .rows per batch., got {bad!r}"
        ):
            check_batch_size(bad, "rows")


def test_check_counts():
    assert check_counts([3, 0, 2.0], 3) == [3, 0, 2]
    assert check_counts(np.array([1, 2]), 2) == [1, 2]
    assert check_counts(torch.tensor([4, 5]), 2) == [4, 5]
    with pytest.raises(ShapeError, match="3 entries .one per class., got 2"):
        check_counts([1, 2], 3)
    with pytest.raises(ShapeError, match="nested"):
        check_counts([[1, 2]], 1)
    for bad, shown in ((-1, "-1"), (1.5, "1.5"), (True, "True"), ("3", "'3'")):
        with pytest.raises(NclabError, match=f"got {shown} for class 1"):
            check_counts([2, bad], 2)
