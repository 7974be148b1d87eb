"""Undefined metrics read as None with a reason, never as a number (issue 16 item 4).

Convention (docs/metrics.md, "Undefined values and flags"): a metric that is undefined on the data,
or whose float64 computation lost its digits, is ``None`` (JSON null) and
``result["undefined"][key]`` says why; a quantity that cannot be negative is never reported negative.
"""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from nclab.metrics import FeatureStats, NeuralCollapse, measure, nc_metrics
from tests.metrics.reference import long_tailed, reference

NC1_KEYS = ("nc1", "nc1_stable", "nc1_weighted_sb", "nc1_cdnv")
NON_NEGATIVE = (
    "nc1",
    "nc1_stable",
    "nc1_weighted_sb",
    "nc1_cdnv",
    "nc2_equinorm",
    "nc2_equiangle",
    "nc2_maxangle",
    "nc2_etf",
    "nc3",
    "nc3_zhu",
    "nc4_bias",
)


def _stats(h, y, k, batch=16):
    st = FeatureStats(k, h.shape[1])
    for i in range(0, len(y), batch):
        st.update(torch.as_tensor(h[i : i + batch]), torch.as_tensor(y[i : i + batch]))
    return st


def test_every_class_one_sample_gives_none_not_zero():
    rng = np.random.default_rng(0)
    h, y = rng.normal(size=(4, 3)), np.arange(4)
    w = torch.as_tensor(rng.normal(size=(4, 3)))
    with pytest.warns(UserWarning, match="one sample"):
        one = nc_metrics(_stats(h, y, 4), w)
    with pytest.warns(UserWarning, match="one sample"):
        two = measure(torch.as_tensor(h), torch.as_tensor(y), w)
    for res in (one, two):
        for key in NC1_KEYS:
            assert res[key] is None, key
            assert "undefined" in res["undefined"][key], key
        assert res["per_class"]["var"] == [None] * 4
        assert res["nc2_etf"] is not None and res["nc3"] is not None  # the means are still measured
        assert json.loads(json.dumps(res))["nc1"] is None  # JSON null
        assert res["flags"] == []


def test_metric_adapter_reports_none_for_singletons():
    m = NeuralCollapse(3, 2)
    m.update(torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), torch.tensor([0, 1, 2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.compute()
    assert res["nc1"] is None and res["nc1_cdnv"] is None and "nc1" in res["undefined"]


@pytest.mark.parametrize("offset", [1e8, 1e9])
def test_exploded_features_give_none_and_a_reason_not_a_negative_number(offset):
    """Features whose mean is 1e8-1e9 times their spread: the raw float64 moments of FeatureStats cannot
    resolve the within-class scatter (at 1e9 the computed NC1 is negative). Reported None + reason."""
    h, y, w, b, _ = long_tailed(k=5, d=6, seed=4, offset=offset)
    res = nc_metrics(_stats(h, y, 5), torch.as_tensor(w), torch.as_tensor(b))
    for key in NC1_KEYS:
        assert res[key] is None, (key, res[key])
        assert res["undefined"][key].startswith("lost digits"), key
    assert "per_class.var" in res["undefined"]
    assert all(v is None or v >= 0 for v in res["per_class"]["var"])


def test_the_two_pass_path_keeps_its_digits_where_the_one_pass_loses_them():
    """measure's two-pass path centres each row on its class mean: exact at the same offset."""
    h, y, w, b, _ = long_tailed(k=5, d=6, seed=4, offset=1e9)
    got = measure(torch.as_tensor(h), torch.as_tensor(y), torch.as_tensor(w), torch.as_tensor(b))
    ref = reference(h, y, w, b)
    assert got["undefined"] == {}
    assert got["nc1"] == pytest.approx(ref["nc1"], rel=1e-6)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6])
def test_moderate_offsets_keep_their_value(offset):
    h, y, w, b, _ = long_tailed(k=5, d=6, seed=4, offset=offset)
    res = nc_metrics(_stats(h, y, 5), torch.as_tensor(w), torch.as_tensor(b))
    ref = reference(h, y, w, b)
    assert res["undefined"] == {}
    assert res["nc1"] == pytest.approx(ref["nc1"], rel=1e-2)
    assert res["nc1_cdnv"] == pytest.approx(ref["nc1_cdnv"], rel=1e-2)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("offset", [0.0, 1e7, 1e8, 1e9, 1e10])
def test_non_negative_metrics_are_never_negative(seed, offset):
    h, y, w, b, _ = long_tailed(k=6, d=5, seed=seed, offset=offset)
    res = nc_metrics(_stats(h, y, 6), torch.as_tensor(w), torch.as_tensor(b))
    for key in NON_NEGATIVE:
        v = res[key]
        assert v is None or (math.isfinite(v) and v >= 0), (key, v)
        assert (v is None) == (key in res["undefined"]), key
    for v in res["per_class"]["var"]:
        assert v is None or v >= 0


def test_exact_collapse_is_zero_not_undefined():
    """Collapsed to within rounding is a finding (0), not lost digits."""
    rng = np.random.default_rng(1)
    m = rng.normal(size=(4, 6)) * 3
    h = np.repeat(m, 5, axis=0) + 1e-12 * rng.normal(size=(20, 6))
    y = np.repeat(np.arange(4), 5)
    res = nc_metrics(_stats(h, y, 4))
    assert res["undefined"] == {}
    assert 0.0 <= res["nc1"] < 1e-12 and 0.0 <= res["nc1_cdnv"] < 1e-12
