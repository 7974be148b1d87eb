"""The two-pass path (issue 19) against the one-pass path and the float64 numpy reference.

Every key of the result is compared between the paths (so a metric added to ``nc_metrics`` that
needed Sigma_W outside span(M~) would show up here), and the covariance keys against the reference,
on long-tailed data with K > d, rank-deficient class means, a class with one sample, a missing
class and a large common offset; the work around the products (issue 19): Sigma_W's in-span block
without a d x d matrix, the padded product and the nearest-centre certificate.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from nclab.errors import NclabError, NonFiniteError, ShapeError
from nclab.metrics import (
    ClassSums,
    FeatureStats,
    SpanPass,
    choose_path,
    measure,
    measure_batches,
    path_costs,
    twopass,
)
from nclab.metrics.functional import Prepared
from tests.metrics.reference import ill_conditioned_means, long_tailed, reference

COV_KEYS = ["nc1", "nc1_weighted_sb", "nc1_cdnv"]
MEAN_KEYS = ["nc2_equinorm", "nc2_equiangle", "nc2_maxangle", "nc2_etf"]
W_KEYS = ["nc3", "nc3_zhu", "nc4_bias", "nc4"]
F64 = torch.float64


def _t(x, dtype=torch.float64):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _close(a, b, rel, path=""):
    """Every key, recursively: floats to ``rel``, everything else equal."""
    if isinstance(a, dict):
        assert set(a) - {"path"} == set(b) - {"path"}, path
        for k in a:
            if k != "path":
                _close(a[k], b[k], rel, f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, float) and b is not None and "nc1_spectrum/err" in path:
        assert a >= 0 and b >= 0, path  # rounding estimates are each path's own (raw moments vs centred)
    elif isinstance(a, float) and b is not None:
        # angles near 0 are arccos of cosines near 1: rounding gives ~1e-6 degrees (test_functional: 1e-4)
        assert b == pytest.approx(a, rel=rel, abs=1e-4 if "angle" in path else 1e-12), path
    else:
        assert a == b, path


def _rank_deficient(k=6, d=8, rank=2, seed=0, counts=None):
    """Class means exactly in a ``rank``-dimensional subspace: the per-class noise has zero sample mean."""
    rng = np.random.default_rng(seed)
    counts = counts or [max(2, int(40 * 0.6**i)) for i in range(k)]
    basis = np.linalg.qr(rng.normal(size=(d, rank)))[0]
    centres = rng.normal(size=(k, rank)) @ basis.T * 4
    parts = []
    for c, n in enumerate(counts):
        noise = rng.normal(size=(n, d))
        parts.append(centres[c] + noise - noise.mean(0))
    h = np.concatenate(parts)
    y = np.repeat(np.arange(k), counts)
    perm = rng.permutation(len(y))
    return h[perm], y[perm], rng.normal(size=(k, d)), rng.normal(size=k), counts


CASES = {
    "long_tailed": lambda: long_tailed(k=6, d=5, seed=0),
    "k_greater_than_d": lambda: long_tailed(k=8, d=3, seed=7),
    "rank_deficient_means": lambda: _rank_deficient(),
    "one_sample_class": lambda: long_tailed(k=4, d=3, seed=8, counts=[10, 8, 6, 1]),
    "large_offset": lambda: long_tailed(k=5, d=6, seed=4, offset=1e3),
}


@pytest.mark.parametrize("center", ["weighted", "balanced"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_two_pass_equals_one_pass_and_the_reference(case, center):
    h, y, w, b, counts = CASES[case]()
    args = (_t(h), torch.as_tensor(y), _t(w), _t(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one-sample class warns (tested in test_functional)
        two = measure(*args, center=center, batch_size=7, path="two_pass")
        one = measure(*args, center=center, batch_size=7, path="one_pass")
        auto = measure(*args, center=center)
    assert (two["path"], one["path"], auto["path"]) == ("two_pass", "one_pass", "two_pass")
    _close(one, two, rel=1e-8)  # every key the result reports, per-class and groups included
    ref = reference(h, y, w, b, center=center)
    for key in COV_KEYS + MEAN_KEYS + W_KEYS:
        assert two[key] == pytest.approx(ref[key], rel=1e-8, abs=1e-12), key
    np.testing.assert_allclose(
        [np.nan if v is None else v for v in two["per_class"]["nc1"]],
        [np.nan if v is None else v for v in ref["per_class_nc1"]],
        rtol=1e-8,
    )
    np.testing.assert_allclose(
        [np.nan if v is None else v for v in two["per_class"]["var"]],
        [np.nan if v is None else v for v in ref["per_class_var"]],
        rtol=1e-8,
    )
    # nc1 is the count-weighted mean of per-class nc1 (classes with >= 2 samples)
    pc = [(n, v) for n, v in zip(counts, two["per_class"]["nc1"]) if v is not None]
    assert two["nc1"] == pytest.approx(sum(n * v for n, v in pc) / sum(n for n, _ in pc), rel=1e-10)


def test_rank_deficient_case_is_rank_deficient_and_k_greater_than_d_fills_the_space():
    h, y, w, b, _ = _rank_deficient()
    assert measure(_t(h), torch.as_tensor(y), _t(w), _t(b))["rank_sigma_b"] == 2
    h, y, w, b, _ = long_tailed(k=8, d=3, seed=7)
    assert measure(_t(h), torch.as_tensor(y), _t(w), _t(b))["rank_sigma_b"] == 3


def test_many_classes_symmetric_within_block():
    # r >= 128: Sigma_W inside the span is accumulated from upper-triangle strips
    counts = [int(40 * 0.97**i) + 2 for i in range(140)]
    h, y, w, b, _ = long_tailed(k=140, d=150, seed=12, counts=counts)
    args = (_t(h), torch.as_tensor(y), _t(w), _t(b))
    two = measure(*args, batch_size=1000, path="two_pass")
    one = measure(*args, path="one_pass")
    assert two["rank_sigma_b"] == 139
    for key in COV_KEYS + ["nc4"]:
        assert two[key] == pytest.approx(one[key], rel=1e-8), key
    np.testing.assert_allclose(two["per_class"]["nc1"], one["per_class"]["nc1"], rtol=1e-8)


def test_missing_class_with_allow_missing():
    h, y, w, b, _ = long_tailed(k=5, d=4, seed=9)
    keep = y != 2
    args = (_t(h[keep]), torch.as_tensor(y[keep]), _t(w), _t(b))
    two = measure(*args, allow_missing=True, path="two_pass")
    one = measure(*args, allow_missing=True, path="one_pass")
    _close(one, two, rel=1e-8)
    ref = reference(h[keep], y[keep], w, b)
    for key in COV_KEYS + ["nc4"]:
        assert two[key] == pytest.approx(ref[key], rel=1e-8), key
    assert two["per_class"]["nc1"][2] is None and two["per_class"]["count"][2] == 0


def test_float32_with_a_large_offset_matches_float64():
    # mean 1e3 times the spread: pass 1 sums after one shift, pass 2 centres on the class means before
    # the product, so float32 keeps the within-class terms
    h, y, w, b, _ = long_tailed(k=5, d=6, seed=4, offset=1e3, spread=1.0)
    ref = reference(h, y, w, b)
    f32 = [_t(v, torch.float32) for v in (h, w, b)]
    got = measure(f32[0], torch.as_tensor(y), f32[1], f32[2], batch_size=13, path="two_pass")
    for key in COV_KEYS + ["nc2_equinorm", "nc2_etf", "nc3"]:
        assert got[key] == pytest.approx(ref[key], rel=1e-4), key
    np.testing.assert_allclose(got["per_class"]["nc1"], ref["per_class_nc1"], rtol=1e-4)
    np.testing.assert_allclose(got["per_class"]["var"], ref["per_class_var"], rtol=1e-4)


def test_batching_order_and_loader_kinds_do_not_matter():
    h, y, w, b, _ = long_tailed(k=6, d=5, seed=1)
    x, t = _t(h), torch.as_tensor(y)
    ref = measure(x, t, _t(w), _t(b), path="two_pass")
    perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(0))
    reads = iter([perm[:50], perm])  # the second read in another order and batching

    def factory():
        order = next(reads)
        if len(order) < len(t):
            order = torch.arange(len(t))
        return [(x[order[i : i + 9]], t[order[i : i + 9]]) for i in range(0, len(t), 9)]

    got = measure_batches(factory, _t(w), _t(b), path="two_pass")
    _close(ref, got, rel=1e-10)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, t), batch_size=16)
    _close(ref, measure_batches(loader, _t(w), _t(b), path="two_pass"), rel=1e-10)
    as_list = [(x[i : i + 5], t[i : i + 5]) for i in range(0, len(t), 5)]
    _close(ref, measure_batches(as_list, _t(w), _t(b), path="two_pass"), rel=1e-10)
    one = measure_batches(as_list, _t(w), _t(b), path="one_pass")
    assert one["path"] == "one_pass"
    _close(ref, one, rel=1e-8)


def test_without_classifier_and_without_decisions():
    h, y, w, b, _ = long_tailed(k=6, d=5, seed=2)
    got = measure(_t(h), torch.as_tensor(y), path="two_pass")
    assert got["nc4"] is None and got["nc3"] is None and None not in got["per_class"]["nc1"]
    one = measure(_t(h), torch.as_tensor(y), path="one_pass")
    _close(one, got, rel=1e-8)
    batches = [(_t(h), torch.as_tensor(y))]
    lite = measure_batches(batches, _t(w), _t(b), path="two_pass", full=False)
    assert lite["nc4"] is None and lite["nc3"] is not None
    assert lite["per_class"]["nc1"] == pytest.approx(got["per_class"]["nc1"], rel=1e-12)


def test_span_stats_keep_sigma_w_inside_the_span_only():
    from nclab.metrics import FeatureStats

    h, y, w, b, _ = long_tailed(k=6, d=5, seed=3)
    x, t = _t(h), torch.as_tensor(y)
    first = ClassSums(6, 5)
    first.update(x, t)
    first.check()
    sp = SpanPass(first, _t(w), _t(b))
    sp.update(x, t)
    st = sp.finish()
    full = FeatureStats(6, 5)
    full.update(x, t)
    proj = sp.prep.proj
    torch.testing.assert_close(
        proj.T @ st.within_scatter() @ proj, proj.T @ full.within_scatter() @ proj, rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(st.class_variances(), full.class_variances(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(st.sq_norms, full.sq_norms, rtol=1e-10, atol=1e-12)
    with pytest.raises(NclabError, match="one_pass"):
        st.second  # noqa: B018 - the d x d raw moment is not kept


def test_states_merge_by_summation():
    h, y, w, b, _ = long_tailed(k=6, d=5, seed=4)
    x, t = _t(h), torch.as_tensor(y)
    whole, a, c = ClassSums(6, 5), ClassSums(6, 5), ClassSums(6, 5)
    whole.update(x, t)
    a.update(x[:30], t[:30])
    c.update(x[30:], t[30:])
    a.merge(c)
    torch.testing.assert_close(a.sums, whole.sums, rtol=1e-12, atol=1e-12)
    s1, s2, s = SpanPass(whole, _t(w), _t(b)), SpanPass(whole, _t(w), _t(b)), SpanPass(whole, _t(w), _t(b))
    s1.update(x[:20], t[:20])
    s2.update(x[20:], t[20:])
    s.update(x, t)
    s1.merge(s2)
    for u, v in zip(s1.states(), s.states()):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


def test_path_choice_by_shapes():
    # the full set over features in memory: two-pass never costs more (r <= d)
    for d, k in [(512, 10), (512, 100), (1024, 500), (2048, 1000), (64, 500)]:
        assert choose_path(d, k) == "two_pass"
        c = path_costs(d, k)
        assert c["two_pass"] <= c["one_pass"]
    # only the one-read keys, r close to d: the d x d second moment is cheaper than d r + r^2/2
    assert choose_path(2048, 1000, full=False) == "one_pass"
    assert choose_path(512, 10, full=False) == "two_pass"
    # a second read that re-runs a network: worth it only for the second-read keys (both paths read
    # twice for those)
    assert choose_path(512, 100, full=False, reread_cost=1e9) == "one_pass"
    assert choose_path(512, 100, reread_cost=1e9) == "two_pass"
    h, y, w, b, _ = long_tailed(k=6, d=5, seed=5)
    got = measure_batches([(_t(h), torch.as_tensor(y))], _t(w), _t(b), full=False, reread_cost=1e9)
    assert got["path"] == "one_pass" and got["nc4"] is None


def test_errors_name_the_problem():
    h, y, w, b, _ = long_tailed(k=6, d=5, seed=6)
    x, t = _t(h), torch.as_tensor(y)
    bad = x.clone()
    bad[7, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="row 7"):
        measure(bad, t, path="two_pass")
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        measure_batches([(bad, t)], num_classes=6, path="two_pass")
    with pytest.raises(ShapeError, match=r"outside \[0, 6\)"):
        measure_batches([(x, t + 1)], num_classes=6, path="two_pass")
    with pytest.raises(NclabError, match="one-shot iterator"):
        measure_batches(iter([(x, t)]), num_classes=6)
    reads = iter([[(x, t)], [(x[:-3], t[:-3])]])
    with pytest.raises(NclabError, match="counts differ"):
        measure_batches(lambda: next(reads), num_classes=6, path="two_pass")
    with pytest.raises(NclabError, match="path"):
        measure(x, t, path="three_pass")
    with pytest.raises(NclabError, match="num_classes"):
        measure_batches([(x, t)])


def test_two_pass_updates_on_fake_cuda_without_sync(monkeypatch):
    """Both passes on fake "cuda" tensors: any host synchronisation raises in fake mode."""
    k, d, n, r = 5, 8, 64, 4

    def fake_prepare(stats, **kw):
        f64 = dict(dtype=torch.float64)
        return Prepared(
            present=torch.arange(k),
            counts=torch.full((k,), 10.0, **f64),
            means=torch.randn(k, d, **f64),
            mu_g=torch.randn(d, **f64),
            mt=torch.randn(k, d, **f64),
            proj=torch.randn(d, r, **f64),
            num_within=10.0 * k,
            center="weighted",
            left=torch.randn(k, r, **f64),
            basis=torch.randn(d, r, **f64),
        )

    monkeypatch.setattr(twopass, "prepare", fake_prepare)
    monkeypatch.setattr(twopass, "check_classifier", lambda *a: None)
    w, b = torch.randn(k, d), torch.randn(k)  # CPU weights, as a user might pass them
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.randn(n, d, device="cuda")
        y = torch.randint(0, k, (n,), device="cuda")
        first = ClassSums(k, d)
        first.update(x, y)
        first.update(x.double(), y)
        assert first.sums.device.type == "cuda" and first.counts.device.type == "cuda"
        sp = SpanPass(first, w, b)
        sp.update(x, y)
        sp.update(x.double(), y)
        assert all(s.device.type == "cuda" for s in sp.states())


def test_cost_model_is_finite_and_reported_path_is_json():
    import json

    h, y, w, b, _ = long_tailed(k=6, d=5, seed=7)
    got = measure(_t(h), torch.as_tensor(y), _t(w), _t(b))
    assert json.loads(json.dumps(got))["path"] == "two_pass"
    assert all(math.isfinite(v) for v in path_costs(5, 6).values())


def test_within_scatter_in_the_span_without_a_d_by_d_matrix():
    h, y, w, b, _ = long_tailed(k=6, d=9, seed=3)
    x, t = torch.as_tensor(h, dtype=F64), torch.as_tensor(y)
    first = ClassSums(6, 9)
    first.update(x, t)
    first.check()
    sp = SpanPass(first, torch.as_tensor(w, dtype=F64), torch.as_tensor(b, dtype=F64))
    sp.update(x, t)
    st = sp.finish()
    full = FeatureStats(6, 9)
    full.update(x, t)
    proj = sp.prep.proj
    want = proj.T @ full.within_scatter() @ proj
    torch.testing.assert_close(full.within_scatter_in(proj), want, rtol=1e-12, atol=1e-12)
    assert st.within_scatter_in(proj) is st.within_span  # pass 2's own block: nothing rebuilt
    torch.testing.assert_close(st.within_scatter_in(proj), want, rtol=1e-10, atol=1e-12)
    other = sp.prep.basis[:, :3] * 2.0  # any basis inside span(M~)
    torch.testing.assert_close(
        st.within_scatter_in(other), other.T @ full.within_scatter() @ other, rtol=1e-10, atol=1e-12
    )


def test_product_is_padded_to_aligned_columns():
    h, y, w, b, _ = long_tailed(k=7, d=5, seed=1)
    first = ClassSums(7, 5)
    first.update(torch.as_tensor(h, dtype=F64), torch.as_tensor(y))
    for ww in (torch.as_tensor(w, dtype=F64), None):
        sp = SpanPass(first, ww)
        big = sp._consts64["big"]
        assert big.shape[1] % twopass.PAD == 0
        assert bool((big[:, sp.r + (7 if ww is not None else 0) :] == 0).all())


def _nc4_brute(h, y, w, b, present=None):
    """nc4 in float64 from the definition: argmax of the logits against the nearest class mean."""
    h, w, b = (torch.as_tensor(a, dtype=F64) for a in (h, w, b))
    y = torch.as_tensor(y)
    k = w.shape[0]
    present = list(range(k)) if present is None else present
    means = torch.stack([h[y == c].mean(0) for c in present])
    near = torch.tensor(present)[torch.cdist(h, means).argmin(1)]
    return float(((h @ w.T + b).argmax(1) != near).double().mean())


@pytest.mark.parametrize("spread", [0.05, 0.6, 3.0])  # certified rows: all, some, none
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nearest_centre_certificate_gives_the_nearest_centre(spread, dtype):
    rng = np.random.default_rng(5)
    k, d, n = 8, 12, 600
    centres = rng.normal(size=(k, d))
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    h = centres[y] + spread * rng.normal(size=(n, d))
    w, b = rng.normal(size=(k, d)), rng.normal(size=k)
    args = (torch.as_tensor(h, dtype=dtype), torch.as_tensor(y), torch.as_tensor(w, dtype=dtype))
    two = measure(*args, torch.as_tensor(b, dtype=dtype), batch_size=50, path="two_pass")
    one = measure(*args, torch.as_tensor(b, dtype=dtype), batch_size=50, path="one_pass")
    brute = _nc4_brute(h, y, w, b)
    assert two["nc4"] == pytest.approx(brute, abs=1.5 / n) and one["nc4"] == pytest.approx(brute, abs=1.5 / n)
    if dtype == torch.float64:
        assert two["nc4"] == pytest.approx(brute, abs=1e-12)


def test_nearest_centre_certificate_with_a_missing_class():
    rng = np.random.default_rng(6)
    k, d, n = 6, 10, 400
    centres = rng.normal(size=(k, d))
    y = np.concatenate([np.arange(k - 1), rng.integers(0, k - 1, n - k + 1)])  # class 5 has no sample
    h = centres[y] + 0.3 * rng.normal(size=(n, d))
    w, b = rng.normal(size=(k, d)), rng.normal(size=k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = measure(
            torch.as_tensor(h), torch.as_tensor(y), torch.as_tensor(w), torch.as_tensor(b),
            allow_missing=True, batch_size=64, path="two_pass",
        )  # fmt: skip
    assert two["nc4"] == pytest.approx(_nc4_brute(h, y, w, b, present=list(range(k - 1))), abs=1e-12)


def test_ill_conditioned_means_still_match_the_reference_through_the_gram_path():
    h, y = ill_conditioned_means(k=10, d=16, small=1e-4)
    for rcond in (None, 1e-6, 1e-12):
        ref = reference(h, y, rcond=1e-10 if rcond is None else rcond)
        got = measure(torch.as_tensor(h, dtype=F64), torch.as_tensor(y), rcond=rcond, path="two_pass")
        assert got["nc1_rank"] == ref["nc1_rank"]
        assert got["nc1"] == pytest.approx(ref["nc1"], rel=1e-6)
