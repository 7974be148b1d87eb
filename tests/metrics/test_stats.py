"""One-pass mergeable statistics (metrics/stats.py) against float64 numpy: the moments, the derived
means/variances/scatter, the blocked Gram product, batching and merge order, persistence, errors."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nclab.errors import ShapeError
from nclab.metrics import FeatureStats, nc_metrics
from tests.metrics.reference import long_tailed


def _t(x, dtype=torch.float64):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _data(seed, k=5, d=6):
    h, y, w, b, counts = long_tailed(k=k, d=d, seed=seed)
    return torch.tensor(h), torch.tensor(y), torch.tensor(w), torch.tensor(b), counts


def test_moments_and_derived_quantities_by_hand():
    h = np.array([[1.0, 2.0], [3.0, 2.0], [0.0, -1.0], [0.0, 1.0], [2.0, 0.0]])
    y = np.array([0, 0, 1, 1, 1])
    st_ = FeatureStats(3, 2)  # class 2 never seen
    st_.update(_t(h[:2], torch.float32), torch.as_tensor(y[:2]))
    st_.update(_t(h[2:]), torch.as_tensor(y[2:]))
    assert st_.counts.tolist() == [2.0, 3.0, 0.0] and st_.num_samples == 5
    np.testing.assert_allclose(st_.second.numpy(), h.T @ h, rtol=1e-12)
    np.testing.assert_allclose(st_.sq_norms.numpy(), [18.0, 6.0, 0.0], rtol=1e-12)
    means = st_.means().numpy()
    np.testing.assert_allclose(means[:2], [[2.0, 2.0], [2 / 3, 0.0]], rtol=1e-12)
    assert np.isnan(means[2]).all()
    # v_k: mean squared distance to the class mean; class 1: (4/9+1) + (4/9+1) + (16/9) = 14/3 over 3
    np.testing.assert_allclose(st_.class_variances().numpy()[:2], [1.0, 14 / 9], rtol=1e-12)
    r = h - np.array([[2.0, 2.0], [2 / 3, 0.0]])[y]
    np.testing.assert_allclose(st_.within_scatter().numpy(), r.T @ r, rtol=1e-12, atol=1e-14)
    basis = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    np.testing.assert_allclose(st_.within_scatter_in(basis).numpy(), [[np.ones(2) @ r.T @ r @ np.ones(2)]])
    assert repr(st_) == "FeatureStats(num_classes=3, dim=2, num_samples=5)"


@pytest.mark.parametrize("shape", [(40, 7), (33, 512), (20, 1000), (5, 2051)])
def test_symmetric_gram_equals_the_full_product(shape):
    from nclab.metrics.stats import symmetric_gram

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(symmetric_gram(x), x.T @ x, rtol=1e-12, atol=1e-12)


def test_feature_stats_second_moment_at_a_blocked_width():
    """d >= 512 takes the blocked product: the pooled second moment against float64 numpy."""
    g = np.random.default_rng(0)
    h = g.normal(size=(64, 600)) + 5.0
    y = np.arange(64) % 4
    st = FeatureStats(4, 600)
    st.update(_t(h, torch.float32), torch.as_tensor(y))
    np.testing.assert_allclose(st.second.numpy(), h.T @ h, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(st.second.numpy(), st.second.numpy().T, rtol=1e-14)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 80), min_size=1, max_size=5))
def test_batch_splitting_and_merge_order(seed, cuts):
    h, y, w, b, _ = _data(seed)
    whole = FeatureStats(5, 6)
    whole.update(h, y)
    bounds = sorted({min(c, len(y)) for c in cuts} | {0, len(y)})
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        s = FeatureStats(5, 6)
        s.update(h[lo:hi], y[lo:hi])
        parts.append(s)
    merged = FeatureStats(5, 6)
    for s in reversed(parts):
        merged.merge(s)
    for name in ("counts", "sums", "sq_norms", "second"):
        torch.testing.assert_close(getattr(merged, name), getattr(whole, name), rtol=1e-12, atol=1e-9)
    a, c = nc_metrics(whole, w, b), nc_metrics(merged, w, b)
    for key in ("nc1", "nc1_cdnv", "nc2_etf", "nc3"):
        assert c[key] == pytest.approx(a[key], rel=1e-9, abs=1e-10), key


def test_empty_batch_is_a_no_op():
    s = FeatureStats(3, 2)
    s.update(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    assert s.num_samples == 0


def test_state_dict_and_pickle_round_trip():
    h, y, *_ = _data(1)
    s = FeatureStats(5, 6)
    s.update(h, y)
    t = FeatureStats.from_state_dict(s.state_dict())
    u = pickle.loads(pickle.dumps(s))
    for name in ("counts", "sums", "sq_norms", "second"):
        assert torch.equal(getattr(t, name), getattr(s, name)) and torch.equal(
            getattr(u, name), getattr(s, name)
        )
    np.testing.assert_allclose(s.means().numpy(), [h[y == c].mean(0).numpy() for c in range(5)])


def test_merge_shape_mismatch():
    with pytest.raises(ShapeError):
        FeatureStats(3, 2).merge(FeatureStats(3, 4))
    with pytest.raises(ShapeError, match="dimension"):
        FeatureStats(3, 2).update(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ShapeError, match=">= 1"):
        FeatureStats(0, 3)
    with pytest.raises(ShapeError, match="other num_classes"):
        FeatureStats(3, 2).load_state_dict(FeatureStats(2, 2).state_dict())
