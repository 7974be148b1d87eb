"""The second pass (metrics/second_pass.py): nc4 and per-class nc1 against the float64 numpy
reference, in any batching and dtype, without a classifier, and with a class of one sample."""

import warnings

import numpy as np
import pytest
import torch

from nclab.metrics import FeatureStats, SecondPass, measure, nc_metrics
from tests.metrics.reference import long_tailed, reference


def _t(x, dtype=torch.float64):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _passes(h, y, w=None, b=None, batch=7, dtype=torch.float64, **kw):
    k = int(w.shape[0]) if w is not None else int(y.max()) + 1
    st = FeatureStats(k, h.shape[1])
    st.update(_t(h), torch.as_tensor(y))
    sp = SecondPass(st, None if w is None else _t(w), None if b is None else _t(b), **kw)
    for i in range(0, len(y), batch):
        sp.update(_t(h[i : i + batch], dtype), torch.as_tensor(y[i : i + batch]))
    return sp.result()


def test_one_pass_stats_without_second_pass():
    h, y, w, b, _ = long_tailed(seed=5)
    st = FeatureStats(6, 5)
    st.update(_t(h), torch.as_tensor(y))
    one = nc_metrics(st, _t(w), _t(b))
    assert one["nc4"] is None and all(v is None for v in one["per_class"]["nc1"])
    full = measure(_t(h), torch.as_tensor(y), _t(w), _t(b))
    assert one["nc1"] == pytest.approx(full["nc1"], rel=1e-12)
    sp = SecondPass(st, _t(w), _t(b))
    for i in range(0, len(y), 11):
        sp.update(_t(h[i : i + 11]), torch.as_tensor(y[i : i + 11]))
    two = nc_metrics(st, _t(w), _t(b), second=sp)
    assert two["nc4"] == pytest.approx(full["nc4"]) and two["per_class"]["nc1"] == pytest.approx(
        full["per_class"]["nc1"]
    )


@pytest.mark.parametrize("center", ["weighted", "balanced"])
@pytest.mark.parametrize("batch,dtype", [(1, torch.float64), (13, torch.float64), (1000, torch.float32)])
def test_result_against_the_reference(center, batch, dtype):
    h, y, w, b, _ = long_tailed(k=5, d=6, seed=3)
    ref = reference(h, y, w, b, center=center)
    got = _passes(h, y, w, b, batch=batch, dtype=dtype, center=center)
    rel = 1e-9 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(got["per_class_nc1"], ref["per_class_nc1"], rtol=rel)
    assert got["nc4"] == pytest.approx(ref["nc4"], abs=1e-12 if dtype == torch.float64 else 2 / len(y))


def test_without_a_classifier_and_with_a_one_sample_class():
    h, y, w, b, _ = long_tailed(k=4, d=3, seed=8, counts=[10, 8, 6, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = _passes(h, y)
    ref = reference(h, y)
    assert got["nc4"] is None and got["per_class_nc1"][3] is None
    np.testing.assert_allclose(got["per_class_nc1"][:3], ref["per_class_nc1"][:3], rtol=1e-9)


def test_nc4_by_hand():
    # two classes on a line with means -2 and 2 (class 1: 0.5, 1.5, 4); the nearest mean of 0.5 is 2
    h = np.array([[-2.0], [-2.0], [0.5], [1.5], [4.0]])
    y = np.array([0, 0, 1, 1, 1])
    w = np.array([[-1.0], [1.0]])
    # logits (-x + 1, x - 1): class 1 for x > 1, so 0.5 goes to class 0, its nearest mean is class 1
    assert _passes(h, y, w, np.array([1.0, -1.0]), batch=2)["nc4"] == pytest.approx(0.2, abs=1e-15)
    # logits (-x, x): class 1 for x > 0, every decision is the nearest mean's
    assert _passes(h, y, w, np.array([0.0, 0.0]), batch=2)["nc4"] == 0.0
