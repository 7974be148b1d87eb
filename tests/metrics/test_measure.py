"""``measure`` over in-memory tensors (metrics/measure.py): a case by hand on both paths, the path and
class-count choices, batching, and errors that name the problem. The metric values against the numpy
reference: test_functional.py; the two paths against each other: test_twopass.py."""

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
from nclab.metrics import measure
from tests.metrics.reference import long_tailed

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


def test_numpy_input_is_rejected_with_a_clear_message():
    with pytest.raises(DTypeError, match="torch.Tensor"):
        measure(np.zeros((3, 2)), Y)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["auto", "one_pass", "two_pass"])
def test_a_case_by_hand_on_every_path(path):
    # class means (2, 0) and (-2, 0): Sigma_W = diag(1, 0), Sigma_B = diag(4, 0), nc1 = tr(Sigma_W Sigma_B^+)/K
    h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    r = measure(h, torch.tensor([0, 0, 1, 1]), w, path=path, batch_size=3)
    assert r["nc1"] == pytest.approx(0.125, rel=1e-12)
    assert r["nc2_equinorm"] == pytest.approx(0.0, abs=1e-12) and r["nc4"] == 0.0
    assert r["path"] == ("two_pass" if path == "auto" else path)


def test_unknown_path():
    with pytest.raises(NclabError, match="path must be one of"):
        measure(H, Y, path="three_pass")


def test_number_of_classes_from_weights_counts_or_labels():
    h, y, w, b, _ = long_tailed(k=4, d=5, seed=1)
    h, y, w = torch.as_tensor(h), torch.as_tensor(y), torch.as_tensor(w)
    keep = y < 3  # class 3 absent from the features
    for kw in ({"weights": w}, {"counts": [5, 5, 5, 5]}, {"num_classes": 4}):
        with pytest.raises(MissingClassError):
            measure(h[keep], y[keep], **kw)
        got = measure(h[keep], y[keep], allow_missing=True, **kw)
        assert len(got["per_class"]["count"]) == 4 and got["num_present"] == 3
    assert len(measure(h[keep], y[keep])["per_class"]["count"]) == 3  # from the labels


@pytest.mark.parametrize("path", ["one_pass", "two_pass"])
def test_batch_size_does_not_change_the_result(path):
    h, y, w, b, _ = long_tailed(k=5, d=4, seed=2)
    args = [torch.as_tensor(a) for a in (h, y, w, b)]
    one, many = measure(*args, path=path, batch_size=1), measure(*args, path=path)
    for key in ("nc1", "nc1_cdnv", "nc2_etf", "nc3", "nc4"):
        assert one[key] == pytest.approx(many[key], rel=1e-10), key
