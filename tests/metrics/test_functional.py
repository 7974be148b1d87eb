"""Every metric against the independent numpy reference (tests/metrics/reference.py), 1e-8 rel; the
thin SVD of the means from their Gram matrix and ``prepare``'s rank rule (issue 19)."""

import math
import warnings

import numpy as np
import pytest
import torch

from nclab.errors import NclabError
from nclab.metrics import FeatureStats, NeuralCollapse, SecondPass, measure, nc_metrics
from nclab.metrics import functional as F
from nclab.metrics.functional import nc1_at
from tests.metrics.reference import ill_conditioned_means, long_tailed, reference

SCALARS = ["nc1", "nc1_weighted_sb", "nc1_cdnv", "nc2_equinorm", "nc2_equiangle", "nc2_maxangle", "nc2_etf"]
W_SCALARS = ["nc3", "nc3_zhu", "nc4_bias", "nc4"]
F64 = torch.float64


def _t(x, dtype=torch.float64):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


@pytest.mark.parametrize("center", ["weighted", "balanced"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_numpy_reference(center, seed):
    h, y, w, b, counts = long_tailed(k=6, d=5, seed=seed)
    ref = reference(h, y, w, b, center=center)
    got = measure(_t(h), torch.as_tensor(y), _t(w), _t(b), center=center, batch_size=17)
    for key in SCALARS + W_SCALARS + ["nc1_stable", "nc1_min_eig_ratio"]:
        assert got[key] == pytest.approx(ref[key], rel=1e-8, abs=1e-12), key
    assert got["nc1_rank"] == got["rank_sigma_b"] == ref["nc1_rank"]
    assert got["undefined"] == {}
    # seed 2 (weighted): Sigma_B's last eigenvalue is 8e-4 of the largest and carries 90% of nc1
    assert ("nc1_ill_conditioned" in got["flags"]) == (ref["nc1"] > 10 * ref["nc1_stable"])
    pc = got["per_class"]
    np.testing.assert_allclose(pc["nc1"], ref["per_class_nc1"], rtol=1e-8)
    np.testing.assert_allclose(pc["var"], ref["per_class_var"], rtol=1e-8)
    np.testing.assert_allclose(pc["align_cos"], ref["align_cos"], rtol=1e-8)
    np.testing.assert_allclose(pc["w_norm"], np.linalg.norm(w, axis=1), rtol=1e-10)
    assert pc["count"] == counts
    a = got["align"]
    assert a["ee_ratio_min"] == pytest.approx(ref["ee_ratio_min"], rel=1e-8)
    assert a["ee_ratio_mean"] == pytest.approx(ref["ee_ratio_mean"], rel=1e-8)
    np.testing.assert_allclose(
        sorted(a["principal_angles_deg"]), sorted(ref["principal_angles_deg"]), atol=1e-4
    )
    for name, g in ref["groups"].items():
        for key, val in g.items():
            assert got["groups"][name][key] == pytest.approx(val, rel=1e-8), (name, key)
    # nc1 is the count-weighted mean of the per-class nc1
    n = np.array(counts, dtype=float)
    assert got["nc1"] == pytest.approx(float(np.dot(n / n.sum(), pc["nc1"])), rel=1e-10)


def test_groups_by_given_counts_and_thresholds():
    h, y, w, b, _ = long_tailed(k=6, d=5, seed=3)
    train_counts = [500, 300, 60, 30, 10, 5]
    ref = reference(h, y, w, b, counts=train_counts)
    got = measure(_t(h), torch.as_tensor(y), _t(w), _t(b), counts=train_counts)
    assert got["groups"]["many"]["classes"] == [0, 1]
    assert got["groups"]["medium"]["classes"] == [2, 3]
    assert got["groups"]["few"]["classes"] == [4, 5]
    assert got["groups"]["few"]["w_cos"] == pytest.approx(ref["groups"]["few"]["w_cos"], rel=1e-8)
    assert got["groups"]["few"]["minority_collapse"] == got["groups"]["few"]["w_cos"]
    # few-group error-exponent ratio: the single pair (4, 5)
    wp, mu = w, np.stack([h[y == c].mean(0) for c in range(6)])
    dw, dm = wp[4] - wp[5], mu[4] - mu[5]
    assert got["align"]["ee_ratio_few_min"] == pytest.approx((dw @ dm) ** 2 / (dw @ dw * (dm @ dm)), rel=1e-8)
    g2 = measure(_t(h), torch.as_tensor(y), counts=train_counts, many=400, few=6)
    assert g2["groups"]["many"]["classes"] == [0] and g2["groups"]["few"]["classes"] == [5]


def _simplex(k, d, seed=0):
    """Unit-norm rows with pairwise cosine -1/(K-1), in a random (K-1)-dim subspace of R^d."""
    rng = np.random.default_rng(seed)
    evals, evecs = np.linalg.eigh(np.eye(k) - 1 / k)
    u = evecs[:, evals > 0.5]  # (K, K-1) orthonormal basis of the centred space
    r, _ = np.linalg.qr(rng.normal(size=(d, k - 1)))  # (d, K-1) orthonormal columns
    return np.sqrt(k / (k - 1)) * u @ r.T


@pytest.mark.parametrize("k,d", [(4, 4), (5, 8), (10, 9)])
def test_exact_collapse_gives_zero(k, d):
    m = _simplex(k, d)
    reps = 7
    h = np.repeat(m, reps, axis=0) + 1e-9 * np.random.default_rng(1).normal(size=(k * reps, d))
    y = np.repeat(np.arange(k), reps)
    got = measure(_t(h), torch.as_tensor(y), _t(m), _t(np.zeros(k)))
    for key in [
        "nc1",
        "nc2_equinorm",
        "nc2_equiangle",
        "nc2_maxangle",
        "nc2_etf",
        "nc3",
        "nc3_zhu",
        "nc4",
        "nc4_bias",
    ]:
        assert abs(got[key]) < 1e-6, (key, got[key])
    assert all(abs(c - 1) < 1e-9 for c in got["per_class"]["align_cos"])
    assert got["align"]["ee_ratio_min"] == pytest.approx(1.0, abs=1e-9)
    assert max(got["align"]["principal_angles_deg"]) < 1e-3


def test_large_mean_offset_float32_is_stable():
    # features whose mean is 1e3 times their spread: float32 input must match the float64 result
    h, y, w, b, _ = long_tailed(k=5, d=6, seed=4, offset=1e3, spread=1.0)
    ref = measure(_t(h), torch.as_tensor(y), _t(w), _t(b))
    got = measure(
        _t(h, torch.float32), torch.as_tensor(y), _t(w, torch.float32), _t(b, torch.float32), batch_size=13
    )
    for key in ["nc1", "nc1_cdnv", "nc2_equinorm", "nc2_etf", "nc3"]:
        assert got[key] == pytest.approx(ref[key], rel=1e-4), key
    # the float64 path itself agrees with the loop reference at 1e-8 despite the offset
    r = reference(h, y, w, b)
    assert ref["nc1"] == pytest.approx(r["nc1"], rel=1e-8)


def test_without_classifier_w_keys_are_none():
    h, y, *_ = long_tailed(seed=6)
    got = measure(_t(h), torch.as_tensor(y))
    assert got["nc3"] is None and got["nc4"] is None and got["align"] is None
    assert got["per_class"]["align_cos"] == [None] * 6


def test_k_greater_than_d():
    h, y, w, b, _ = long_tailed(k=8, d=3, seed=7)
    ref = reference(h, y, w, b)
    got = measure(_t(h), torch.as_tensor(y), _t(w), _t(b))
    assert got["rank_sigma_b"] == 3
    assert got["nc1"] == pytest.approx(ref["nc1"], rel=1e-8)


def test_singleton_class_warns_and_is_left_out_of_covariances():
    h, y, w, b, counts = long_tailed(k=4, d=3, seed=8, counts=[10, 8, 6, 1])
    with pytest.warns(UserWarning, match="one sample"):
        got = measure(_t(h), torch.as_tensor(y), _t(w), _t(b))
    ref = reference(h, y, w, b)
    assert got["nc1"] == pytest.approx(ref["nc1"], rel=1e-8)
    assert got["nc1_cdnv"] == pytest.approx(ref["nc1_cdnv"], rel=1e-8)
    assert got["per_class"]["nc1"][3] is None and got["per_class"]["var"][3] is None


def test_allow_missing_measures_present_classes():
    h, y, w, b, _ = long_tailed(k=5, d=4, seed=9)
    keep = y != 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = measure(_t(h[keep]), torch.as_tensor(y[keep]), _t(w), _t(b), allow_missing=True)
    ref = reference(h[keep], y[keep], w, b)
    assert got["num_present"] == 4 and got["per_class"]["count"][2] == 0
    for key in ["nc1", "nc2_etf", "nc3", "nc4"]:
        assert got[key] == pytest.approx(ref[key], rel=1e-8), key
    assert math.isfinite(got["nc2_maxangle"])


def test_seli_block_when_counts_are_known():
    from nclab.geometry import seli_geometry

    h, y, w, b, counts = long_tailed(k=4, d=6, seed=12)
    got = measure(_t(h), torch.as_tensor(y), _t(w), _t(b), counts=counts)
    assert measure(_t(h), torch.as_tensor(y), _t(w), _t(b))["seli"] is None
    mu = np.stack([h[y == c].mean(0) for c in range(4)])
    n = np.array(counts, float)
    mt = mu - (n[:, None] * mu).sum(0) / n.sum()
    tgt = seli_geometry(counts)

    def dist(x, t):
        return np.linalg.norm(x / np.linalg.norm(x) - t.numpy())

    assert got["seli"]["W"] == pytest.approx(dist(w @ w.T, tgt.G_W), rel=1e-8)
    assert got["seli"]["H"] == pytest.approx(dist(mt @ mt.T, tgt.G_H), rel=1e-8)
    assert got["seli"]["Z"] == pytest.approx(dist(w @ mt.T, tgt.Z), rel=1e-8)


@pytest.mark.parametrize("deficient", [False, True])
def test_principal_angles_match_scipy_for_full_and_deficient_classifier_rank(deficient):
    """K < d: span(W) from the QR path when W has full row rank, from the SVD when it does not;
    both against scipy's subspace_angles of the row spaces of W and of the centred means."""
    from scipy.linalg import subspace_angles

    h, y, w, b, _ = long_tailed(k=5, d=9, seed=3)
    if deficient:
        w = w.copy()
        w[4] = w[0] - 2.0 * w[1]  # rank 4
    got = measure(_t(h), torch.as_tensor(y), _t(w), _t(b))
    means = np.stack([h[y == c].mean(0) for c in range(5)])
    mt = means - h.mean(0)
    expect = np.degrees(subspace_angles(w.T, mt.T))
    angles = got["align"]["principal_angles_deg"]
    assert len(angles) == 4  # min(rank W, rank M~): M~ has rank K - 1 = 4, W rank 5 or 4
    np.testing.assert_allclose(sorted(angles), sorted(expect), atol=1e-6)


def test_nc_metrics_does_not_reuse_a_second_pass_prepared_before_more_data():
    """A SecondPass made before the statistics grew must not lend nc_metrics its stale class means."""
    h, y, w, b, _ = long_tailed(k=4, d=6, seed=5)
    st = FeatureStats(4, 6)
    half = len(y) // 2
    st.update(_t(h[:half]), torch.as_tensor(y[:half]))
    second = SecondPass(st, _t(w), _t(b))
    st.update(_t(h[half:]), torch.as_tensor(y[half:]))
    got = nc_metrics(st, _t(w), _t(b), second=second)
    fresh = nc_metrics(st, _t(w), _t(b))
    for key in SCALARS + ["nc3", "nc3_zhu", "nc4_bias"]:
        assert got[key] == pytest.approx(fresh[key], rel=1e-12), key


NC1_SPECTRUM = ["nc1", "nc1_stable", "nc1_min_eig_ratio"]


def test_nc1_dominated_by_near_coincident_means_is_flagged():
    """issue 22: Sigma_B's last eigenvalue 1e-8 of its largest. The exact pseudo-inverse keeps it and
    nc1 is huge; nc1_stable (eigenvalues >= 1e-3 of the largest) stays readable; the flag says so."""
    h, y = ill_conditioned_means(small=1e-4)
    ref = reference(h, y)
    st = FeatureStats(10, 16)
    st.update(_t(h), torch.as_tensor(y))
    for got in (nc_metrics(st), measure(_t(h), torch.as_tensor(y))):
        for key in NC1_SPECTRUM:
            assert got[key] == pytest.approx(ref[key], rel=1e-6), key
        assert got["nc1_rank"] == ref["nc1_rank"] == 9 and got["nc1_stable_rank"] == 8
        assert got["nc1"] > 1e6 * got["nc1_stable"]
        assert got["flags"] == ["nc1_ill_conditioned"]


@pytest.mark.parametrize("rcond", [1e-6, 1e-12])
def test_rcond_sets_the_rank_of_the_pseudo_inverse(rcond):
    h, y = ill_conditioned_means(small=1e-4)  # the small eigenvalue ratio is 1e-8
    ref = reference(h, y, rcond=rcond)
    st = FeatureStats(10, 16)
    st.update(_t(h), torch.as_tensor(y))
    sp = SecondPass(st, rcond=rcond)
    sp.update(_t(h), torch.as_tensor(y))
    got = nc_metrics(st, second=sp, rcond=rcond)
    assert got["nc1_rank"] == ref["nc1_rank"] == (8 if rcond > 1e-8 else 9)
    for key in NC1_SPECTRUM:
        assert got[key] == pytest.approx(ref[key], rel=1e-6), key
    assert ("nc1_ill_conditioned" in got["flags"]) == (rcond < 1e-8)
    # the second pass used the same rank: nc1 is the count-weighted mean of the per-class nc1
    assert got["nc1"] == pytest.approx(float(np.mean(got["per_class"]["nc1"])), rel=1e-9)
    m = NeuralCollapse(10, 16, rcond=rcond)
    m.update(_t(h), torch.as_tensor(y))
    assert m.compute()["nc1"] == pytest.approx(ref["nc1"], rel=1e-6)


def test_stable_rcond_and_bad_rcond():
    h, y = ill_conditioned_means(small=1e-2)  # eigenvalue ratio 1e-4: kept by 1e-3? no; by 1e-5 yes
    st = FeatureStats(10, 16)
    st.update(_t(h), torch.as_tensor(y))
    for stable in (1e-3, 1e-5):
        got = nc_metrics(st, stable_rcond=stable)
        assert got["nc1_stable"] == pytest.approx(reference(h, y, stable=stable)["nc1_stable"], rel=1e-8)
    assert nc_metrics(st, stable_rcond=1e-5)["nc1_stable"] == pytest.approx(nc_metrics(st)["nc1"], rel=1e-12)
    for bad in (-1.0, 1.0, "x"):
        with pytest.raises(NclabError, match="rcond"):
            nc_metrics(st, rcond=bad)


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


# -- NC1 at another rank tolerance from a stored spectrum (nc1_spectrum, nc1_at; the report's --rcond)


@pytest.mark.parametrize("rcond", [1e-12, 1e-9, 1e-3, 0.05])
def test_nc1_at_matches_the_pseudo_inverse_at_that_tolerance(rcond):
    h, y = ill_conditioned_means(small=1e-4)  # Sigma_B's last eigenvalue is 1e-8 of its largest
    res = measure(torch.from_numpy(h), torch.from_numpy(y))
    want = reference(h, y, rcond=rcond)["nc1"]
    assert math.isclose(nc1_at(res["nc1_spectrum"], rcond), want, rel_tol=1e-6)
    # measured at the exact rule, then re-ranked: the same as measuring at that rcond directly
    direct = measure(torch.from_numpy(h), torch.from_numpy(y), rcond=rcond)["nc1"]
    assert math.isclose(nc1_at(res["nc1_spectrum"], rcond), direct, rel_tol=1e-9)


def test_spectrum_terms_sum_to_nc1_and_ratios_descend():
    h, y, w, b, _ = long_tailed()
    res = measure(torch.from_numpy(h), torch.from_numpy(y), torch.from_numpy(w), torch.from_numpy(b))
    spec = res["nc1_spectrum"]
    assert len(spec["ratio"]) == res["nc1_rank"] and spec["ratio"][0] == 1.0
    assert all(a >= b for a, b in zip(spec["ratio"], spec["ratio"][1:]))
    assert math.isclose(sum(spec["term"]), res["nc1"], rel_tol=1e-12)
    assert math.isclose(nc1_at(spec, 0.0), res["nc1"], rel_tol=1e-12)


def test_nc1_at_is_null_without_within_class_spread_and_rejects_a_bad_rcond():
    x = torch.randn(4, 3, dtype=torch.float64)
    res = measure(x, torch.arange(4))  # one sample per class: NC1 undefined
    assert res["nc1"] is None and nc1_at(res["nc1_spectrum"], 1e-3) is None
    with pytest.raises(NclabError, match="rcond"):
        nc1_at(res["nc1_spectrum"], 1.5)
