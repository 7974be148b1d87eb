"""The work around the products (issue 19): the SVD of the means from their Gram matrix, Sigma_W's
in-span block without a d x d matrix, the padded product and the nearest-centre certificate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from nclab.metrics import ClassSums, FeatureStats, SpanPass, measure, twopass
from nclab.metrics import functional as F
from tests.metrics.reference import ill_conditioned_means, long_tailed, reference

F64 = torch.float64


def _orth(rows: int, cols: int, g: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(rows, cols, dtype=F64, generator=g))[0]


def _matrices():
    g = torch.Generator().manual_seed(0)
    out = {}
    m = torch.randn(12, 40, dtype=F64, generator=g)
    out["weighted_centring_rank_k_minus_1"] = m - m.mean(0)
    for name, low in [("spectrum_to_1e-9", -9), ("spectrum_to_1e-15", -15)]:
        out[name] = (_orth(20, 20, g) * torch.logspace(0, low, 20, dtype=F64)) @ _orth(50, 20, g).T
    out["exact_rank_3"] = torch.randn(10, 3, dtype=F64, generator=g) @ torch.randn(
        3, 30, dtype=F64, generator=g
    )
    out["offset"] = out["spectrum_to_1e-9"] + 1e3
    out["k_greater_than_d"] = torch.randn(9, 4, dtype=F64, generator=g)
    out["all_resolved"] = torch.randn(6, 30, dtype=F64, generator=g)
    return out


@pytest.mark.parametrize("name", sorted(_matrices()))
def test_thin_svd_from_the_gram_matches_the_svd(name):
    mt = _matrices()[name]
    s_ref = torch.linalg.svdvals(mt)
    u, s, v = F._thin_svd(mt)
    assert s.shape == s_ref.shape and bool((s[:-1] >= s[1:]).all())
    # absolute accuracy of the SVD itself (eps s_max), also for the singular values the Gram cannot see
    assert (s - s_ref).abs().max() <= 1e-13 * s_ref[0]
    assert ((u * s) @ v.T - mt).abs().max() <= 1e-13 * s_ref[0]
    torch.testing.assert_close(u.T @ u, torch.eye(len(s), dtype=F64), atol=1e-9, rtol=0)
    keep = s > s[0] * 1e-4  # directions well above rounding: orthonormal to rounding
    vk = v[:, keep]
    torch.testing.assert_close(vk.T @ vk, torch.eye(int(keep.sum()), dtype=F64), atol=1e-12, rtol=0)


def _svd_prepare(stats, **kw):
    """``prepare`` with the plain SVD of the means, as before the Gram path."""
    orig = F._thin_svd

    def plain(mt):
        u, s, vh = torch.linalg.svd(mt, full_matrices=False)
        return u, s, vh.T

    F._thin_svd = plain
    try:
        return F.prepare(stats, **kw)
    finally:
        F._thin_svd = orig


@pytest.mark.parametrize("rcond", [None, 1e-6, 1e-12])
@pytest.mark.parametrize("center", ["weighted", "balanced"])
def test_prepare_keeps_the_rank_rule_and_the_pseudo_inverse(rcond, center):
    h, y = ill_conditioned_means(k=10, d=16, small=1e-4)  # Sigma_B's smallest kept eigenvalue ratio 1e-8
    st = FeatureStats(10, 16)
    st.update(torch.as_tensor(h, dtype=F64), torch.as_tensor(y))
    got = F.prepare(st, center=center, rcond=rcond)
    ref = _svd_prepare(st, center=center, rcond=rcond)
    assert got.proj.shape == ref.proj.shape
    torch.testing.assert_close(got.sv, ref.sv, rtol=1e-10, atol=0)
    # Sigma_B^+ / K = P P^T, the same operator whatever basis the two factorisations chose
    pp_got, pp_ref = got.proj @ got.proj.T, ref.proj @ ref.proj.T
    assert (pp_got - pp_ref).abs().max() <= 1e-7 * pp_ref.abs().max()
    torch.testing.assert_close(got.left @ got.left.T, ref.left @ ref.left.T, atol=1e-9, rtol=0)


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
