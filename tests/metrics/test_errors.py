import numpy as np
import pytest
import torch

from nclab.errors import (
    DegenerateError,
    DTypeError,
    MissingClassError,
    NclabError,
    NonFiniteError,
    ShapeError,
)
from nclab.metrics import FeatureStats, measure

H = torch.randn(12, 3)
Y = torch.arange(12) % 3


@pytest.mark.parametrize(
    "call,err,msg",
    [
        (
            lambda: measure(torch.where(torch.arange(36).view(12, 3) == 7, float("nan"), H), Y),
            NonFiniteError,
            "row 2",
        ),
        (lambda: measure(H.clone().fill_(float("inf")), Y), NonFiniteError, "NaN or Inf"),
        (lambda: measure(H, Y.float()), DTypeError, "integer"),
        (lambda: measure(H, Y[:5]), ShapeError, r"shape \(12,\)"),
        (lambda: measure(H, Y, torch.randn(3, 4)), ShapeError, r"\(K, d\) = \(3, 3\)"),
        (lambda: measure(H, Y, torch.randn(3, 3), torch.randn(4)), ShapeError, "bias"),
        (lambda: measure(H, Y - 1), ShapeError, r"found values in \[-1, 1\]"),
        (lambda: measure(H, Y, num_classes=4), MissingClassError, "allow_missing"),
        (lambda: measure(torch.ones(12, 3), Y), DegenerateError, "Sigma_B = 0"),
        (lambda: measure(H.long(), Y), DTypeError, "floating"),
        (lambda: measure(H[None], Y), ShapeError, r"\(N, d\)"),
        (lambda: measure(H, Y, center="median"), NclabError, "center"),
        (lambda: measure(H, Y, counts=[1, 2]), ShapeError, "counts"),
    ],
)
def test_bad_input_names_the_problem(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


def test_merge_shape_mismatch():
    with pytest.raises(ShapeError):
        FeatureStats(3, 2).merge(FeatureStats(3, 4))
    with pytest.raises(ShapeError, match="dimension"):
        FeatureStats(3, 2).update(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))


def test_numpy_input_is_rejected_with_a_clear_message():
    with pytest.raises(DTypeError, match="torch.Tensor"):
        measure(np.zeros((3, 2)), Y)  # type: ignore[arg-type]
