"""Neural-collapse metrics as pure functions of :class:`~nclab.metrics.stats.FeatureStats`.

Definitions (docs/metrics.md, shared/DESIGN.md) with their sources:

- NC1-NC4: Papyan, Han and Donoho, "Prevalence of neural collapse during the terminal phase of deep
  learning training", PNAS 2020. ``nc1 = tr(Sigma_W Sigma_B^+)/K``; NC2 equinorm/equiangle;
  ``nc3 = ||W/||W||_F - M~/||M~||_F||_F^2``; NC4 = disagreement with the nearest class centre.
- ``nc2_maxangle``: Papyan et al. 2020 (Figure 4), mean |cos + 1/(K-1)|.
- ``nc1_cdnv``: class-distance normalised variance, Galanti, Gyorgy and Hutter, ICLR 2022.
- ``nc2_etf``, ``nc3_zhu``, ``nc4_bias``: the conventions of Zhu et al., NeurIPS 2021 (their code).
- ``nc1_weighted_sb``: Sigma_B weighted by n_k/N, as several imbalanced-NC papers use.
- groups and the minority-collapse index: Fang et al., PNAS 2021 ("minority collapse").
- ``seli``: distances of W W^T, M~ M~^T and W M~^T to the SELI geometry of the training counts
  (Thrampoulidis et al., NeurIPS 2022), when W and ``counts`` are given and every class is present.
- ``align``: principal angles between span(W) and span(M~), and the error-exponent ratio
  cos^2(angle(w_i - w_j, mu_i - mu_j)) (papers.md section 8; our derivation from the Gaussian
  error exponent ||mu_i - mu_j||^2/8, consistent with Wang, Gao and Xie, AAAI 2026).

Rank: Sigma_B has rank at most min(K-1, d) (weighted centring) or min(K, d); its pseudo-inverse keeps
singular values of M~ above ``s_max * max(K, d) * eps`` (numpy's matrix_rank rule), and with ``rcond``
only the eigenvalues of Sigma_B above ``rcond`` times the largest. With K > d the between-class space
fills R^d, so ``nc1`` measures all within-class variance, not only the part in a (K-1)-dimensional
subspace. ``nc1_rank`` and ``nc1_min_eig_ratio`` say what ``nc1`` rests on; ``nc1_stable`` is NC1 over
the eigenvalues >= ``stable_rcond`` (1e-3) times the largest, and ``flags`` holds
``"nc1_ill_conditioned"`` when ``nc1 > 10 * nc1_stable`` (near-coincident class means dominate).

Undefined values: a metric that is undefined on the data (no class with two samples) or whose float64
computation lost its digits (a rounding estimate not below the value) is None, never a number, and
``result["undefined"][key]`` gives the reason; a non-negative quantity is never reported negative.
Everything is computed on the statistics' device and read back in one transfer.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from nclab.errors import DegenerateError, MissingClassError, NclabError
from nclab.metrics.groups import GROUPS, split_groups
from nclab.metrics.stats import FeatureStats
from nclab.metrics.validation import check_classifier

CENTERS = ("weighted", "balanced")

STABLE_RCOND = 1e-3
"""``nc1_stable`` keeps the eigenvalues of Sigma_B at least this fraction of the largest."""
ILL_CONDITIONED = 10.0
"""``nc1_ill_conditioned`` is flagged when ``nc1 > ILL_CONDITIONED * nc1_stable``."""
ROUNDING = 8 * torch.finfo(torch.float64).eps
"""Relative rounding estimate of an entry of a scatter formed from float64 raw moments (FeatureStats):
|error_ij| <= ROUNDING * sqrt(S_ii S_jj), S the raw second moment. On the tests' offset data the
resulting estimate of NC1's error is 10-100 times the actual one."""
RESOLUTION = 1e-9
"""NC1/CDNV values whose rounding estimate is below this are reported (clamped at 0: collapsed to
within rounding, a finding); above it, a value not larger than its rounding estimate has lost its
digits and is reported as None."""

NO_WITHIN = "undefined: no class has two or more samples"
NO_PAIR = "undefined: no pair of classes with two or more samples each"


@dataclass
class Prepared:
    """Quantities every metric shares, computed once from the statistics (float64, on their device)."""

    present: torch.Tensor  # (K_p,) indices of classes with samples
    counts: torch.Tensor  # (K,) float64
    means: torch.Tensor  # (K, d) class means, NaN rows for empty classes
    mu_g: torch.Tensor  # (d,) global mean (weighted or balanced)
    mt: torch.Tensor  # (K_p, d) centred means of the present classes
    proj: torch.Tensor  # (d, r) V S^{-1}: ||(h - mu_y) @ proj||^2 = tr((h-mu)(h-mu)^T Sigma_B^+)/K
    num_within: float  # samples in classes with >= 2 samples (covariance terms)
    center: str
    left: torch.Tensor  # (K_p, r) U of the thin SVD mt = U S V^T (kept singular values)
    basis: torch.Tensor  # (d, r) V: orthonormal basis of span{mu_k - mu_G}
    rcond: float | None = None  # the rank rule asked for (None: the rounding rule alone)
    sv: torch.Tensor | None = None  # (r,) kept singular values of mt, descending


def _check_rcond(rcond: float | None) -> None:
    if rcond is not None and not (isinstance(rcond, (int, float)) and 0.0 <= rcond < 1.0):
        raise NclabError(f"rcond must be None or a number in [0, 1), got {rcond!r}")


def prepare(
    stats: FeatureStats,
    *,
    center: str = "weighted",
    allow_missing: bool = False,
    rcond: float | None = None,
) -> Prepared:
    """Class means, global mean, centred means and the Sigma_B pseudo-inverse factor.

    ``rcond``: eigenvalues of Sigma_B at most ``rcond`` times the largest count as zero (as
    ``numpy.linalg.pinv(Sigma_B, rcond, hermitian=True)``), on top of the rounding rule (singular values
    of M~ below ``max(K, d) * eps * ||[mu_1..mu_K]||_F``), which alone applies with ``rcond=None``.
    Everything stays on the statistics' device; this runs once per evaluation and reads a few values
    (class presence, the rank) on the host.
    """
    if center not in CENTERS:
        raise NclabError(f"center must be 'weighted' or 'balanced', got {center!r}")
    _check_rcond(rcond)
    counts = stats.counts.clone()  # a snapshot: nc_metrics compares it to reuse a second pass's SVD
    present = (counts > 0).nonzero().flatten()
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing and not allow_missing:
        raise MissingClassError(
            f"classes {missing[:10]}{'...' if len(missing) > 10 else ''} have no samples; "
            "pass allow_missing=True to measure the present classes only"
        )
    if len(present) < 2:
        raise DegenerateError(f"need at least 2 classes with samples, got {len(present)}")
    single = (counts == 1).nonzero().flatten().tolist()
    if single:
        warnings.warn(
            f"classes {single[:10]} have one sample: measured, but left out of covariance terms",
            stacklevel=3,
        )
    means = stats.means()
    mp = means[present]
    n_p = counts[present]
    mu_g = (n_p[:, None] * mp).sum(0) / n_p.sum() if center == "weighted" else mp.mean(0)
    mt = mp - mu_g
    u, s, v = _thin_svd(mt)
    scale = float(mp.abs().max()) + float(s.max() if len(s) else 0.0)
    if len(s) == 0 or float(s[0]) <= 1e-12 * max(scale, 1e-300):
        raise DegenerateError("all class means are equal (Sigma_B = 0): NC1 is undefined")
    keep = s > _rank_tol(mt, mp)
    if rcond is not None:
        keep &= s * s > rcond * s[0] * s[0]
    basis = v[:, keep]  # (d, r)
    proj = basis / s[keep]
    num_within = float(counts[counts >= 2].sum())
    return Prepared(
        present, counts, means, mu_g, mt, proj, num_within, center, u[:, keep], basis, rcond, s[keep]
    )


GRAM_RESOLVED = 1e-3
""":func:`_thin_svd` takes from the Gram matrix the singular values with s^2 >= this times s_max^2."""


def _thin_svd(mt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD ``mt = U diag(s) V^T`` of the (K, d) centred means, float64: U (K, q), s (q,)
    descending, V (d, q), q = min(K, d).

    For K < d from the eigendecomposition of the K x K Gram matrix G = mt mt^T (2 K^2 d + O(K^3)
    instead of an SVD with vectors, about 4x faster at K = 1000, d = 2048): s_i = sqrt(lambda_i),
    U its eigenvectors, V = mt^T U S^-1. The Gram squares the condition number: an eigenvalue is known
    to about (d eps lambda_max) absolutely, so the Gram only gives the singular values it resolves
    (s_i^2 >= GRAM_RESOLVED s_max^2, relative error ~ sqrt(d) eps / GRAM_RESOLVED). The others (the
    zero one of weighted centring, near-coincident means) come from an SVD of the small matrix
    U_2^T mt (m x d, m the unresolved count), projected off the resolved V, which is as accurate as
    the SVD of mt (absolute error ~ eps s_max): the rank rule of :func:`prepare` (singular values
    below max(K, d) eps ||M||, which the Gram cannot see) and ``rcond`` apply unchanged.
    """
    kp, d = mt.shape
    if kp >= d or kp < 2:
        u, s, vh = torch.linalg.svd(mt, full_matrices=False)
        return u, s, vh.T
    lam, vecs = torch.linalg.eigh(mt @ mt.T)  # ascending
    lam, vecs = lam.flip(0), vecs.flip(1)
    lmax = float(lam[0])
    n1 = int((lam >= GRAM_RESOLVED * lmax).sum()) if lmax > 0 else 0
    if n1 == 0:
        u, s, vh = torch.linalg.svd(mt, full_matrices=False)
        return u, s, vh.T
    s1 = lam.narrow(0, 0, n1).sqrt()
    u1 = vecs.narrow(1, 0, n1)
    v1 = (mt.T @ u1) / s1  # (d, n1)
    if n1 == kp:
        return u1, s1, v1
    u2 = vecs.narrow(1, n1, kp - n1)  # (K, m)
    b = u2.T @ mt  # (m, d): the unresolved part of the spectrum, its leak along V_1 removed below
    b = b - (b @ v1) @ v1.T
    ub, s2, vbh = torch.linalg.svd(b, full_matrices=False)
    return torch.cat([u1, u2 @ ub], 1), torch.cat([s1, s2]), torch.cat([v1, vbh.T], 1)


def _rank_tol(mt: torch.Tensor, uncentred: torch.Tensor) -> float:
    """Singular values of the centred means below ``max(K, d) * eps * ||[mu_1..mu_K]||_F`` are zero.

    Centring subtracts mu_G from the uncentred means, so rounding leaves errors of the order of eps
    times their norm (not of the centred norm): that is the scale the threshold uses.
    """
    scale = max(float(uncentred.norm()), float(mt.norm()))
    return max(mt.shape) * torch.finfo(torch.float64).eps * scale


def _pairs_mean_std(mat: torch.Tensor) -> tuple[float | None, float | None, torch.Tensor]:
    """Mean and population std of the strict upper triangle of a square matrix."""
    k = mat.shape[0]
    iu = torch.triu_indices(k, k, offset=1, device=mat.device)
    vals = mat[iu[0], iu[1]]
    if vals.numel() == 0:
        return None, None, vals
    return float(vals.mean()), float(vals.std(unbiased=False)), vals


def _cosines(x: torch.Tensor) -> torch.Tensor:
    n = x.norm(dim=1).clamp_min(1e-300)
    return (x @ x.T) / (n.unsqueeze(1) * n.unsqueeze(0))


def _etf_target(k: int, device: torch.device | str | None = None) -> torch.Tensor:
    return (torch.eye(k, dtype=torch.float64, device=device) - 1.0 / k) / math.sqrt(k - 1)


def _rel_frobenius(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(_rel_frobenius_t(a, b))


def _rel_frobenius_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a / a.norm() - b / b.norm()).norm()


def _row_space(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (d, r) of the row space of ``x`` (K, d), float64.

    Rank by numpy's matrix_rank rule (singular values above ``s_max * max(K, d) * eps``). For K <= d
    the thin QR ``x^T = Q R`` gives the basis when that rule finds full rank (R has the singular values
    of x, and the (K, K) ``svdvals(R)`` is far cheaper than an SVD of x with vectors); otherwise, or
    for K > d, the basis comes from the SVD.
    """
    tol_factor = max(x.shape) * torch.finfo(torch.float64).eps
    if x.shape[0] <= x.shape[1]:
        q, r = torch.linalg.qr(x.T)  # (d, K), (K, K)
        sv = torch.linalg.svdvals(r)
        if len(sv) and bool((sv > sv[0] * tol_factor).all()):
            return q
    _, sv, vh = torch.linalg.svd(x, full_matrices=False)
    keep = sv > sv[0] * tol_factor
    return vh[keep].T  # (d, r)


def _scatter_full(values: torch.Tensor | list, present: torch.Tensor | list, k: int) -> list[float | None]:
    out: list[float | None] = [None] * k
    vals = values.tolist() if isinstance(values, torch.Tensor) else values
    idx = present.tolist() if isinstance(present, torch.Tensor) else present
    for i, v in zip(idx, vals):
        out[i] = None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v)
    return out


def _masked_mean(vals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(vals.dtype)
    return (vals * m).sum() / m.sum().clamp_min(1.0)


def _device_terms(
    stats: FeatureStats,
    p: Prepared,
    weights: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    stable_rcond: float = STABLE_RCOND,
) -> dict[str, torch.Tensor]:
    """Every tensor :func:`nc_metrics` reports, computed on the statistics' device in float64.

    No host synchronisation and no Python indexing of device tensors (masks and ``index_select``), so
    it runs unchanged on fake "cuda" tensors in the tests; the classifier moves to the statistics'
    device. :func:`nc_metrics` brings the result to the host in one transfer. ``*_err`` entries are
    rounding estimates (see ``ROUNDING``) used to tell a value from lost digits.
    """
    dev = p.mt.device
    f64 = dict(dtype=torch.float64, device=dev)
    pres, mt = p.present, p.mt
    kp = mt.shape[0]
    n_p = p.counts.index_select(0, pres)
    n_total = n_p.sum()
    nw = max(p.num_within, 1.0)
    out: dict[str, torch.Tensor] = {}

    # NC1 (Papyan et al. 2020): tr(Sigma_W Sigma_B^+)/K = tr(P^T S_W P)/N_W with P = V S^-1, S_W the
    # within-class scatter of the classes with >= 2 samples
    proj = p.proj
    c = stats.within_scatter_in(proj)  # (r, r) = P^T S_W P: no d x d matrix from two-pass statistics
    cdiag = c.diagonal()
    out["nc1"] = cdiag.sum() / nw
    # rounding of a scatter formed from raw moments (FeatureStats): |E_ij| <= ROUNDING sqrt(S_ii S_jj)
    # gives |p^T E p| <= ROUNDING (|p|^T a)^2 per column p; statistics gathered on centred rows (the
    # two-pass SpanStats) have no such cancellation (estimate 0)
    raw = _raw_second(stats)
    if raw is not None:
        a = raw.diagonal().clamp_min(0.0).sqrt()
        bvec = proj.abs().T @ a  # (r,)
    else:
        bvec = torch.zeros(proj.shape[1], **f64)
    col_err = ROUNDING * bvec * bvec / nw
    out["nc1_err"] = col_err.sum()
    # the well-conditioned part of Sigma_B's spectrum: eigenvalues s_j^2/K >= stable_rcond * s_0^2/K
    sv = p.sv.to(**f64) if p.sv is not None else 1.0 / proj.norm(dim=0)
    ratio = (sv / sv.narrow(0, 0, 1)) ** 2  # eigenvalues of Sigma_B over the largest, descending
    stable = (ratio >= stable_rcond).to(torch.float64)
    out["nc1_stable"] = (cdiag * stable).sum() / nw
    out["nc1_stable_err"] = (col_err * stable).sum()
    out["nc1_min_eig_ratio"] = ratio.narrow(0, ratio.shape[0] - 1, 1).reshape(())
    out["nc1_stable_rank"] = stable.sum()
    # per eigenpair of Sigma_B: its share of NC1 (v_j^T Sigma_W v_j / (K lambda_j)) and rounding estimate,
    # so that NC1 at a stricter rank tolerance is a sum over the eigenvalue ratios above it (the report)
    out["spectrum_ratio"], out["spectrum_term"], out["spectrum_err"] = ratio, cdiag / nw, col_err
    # Sigma_B weighted by n_k/N: D mt with D = diag(sqrt(n_k/N)) has the row space of mt = U S V^T, so
    # (mt^T D^2 mt)^+ = V S^-1 (U^T D^2 U)^-1 S^-1 V^T and tr(Sigma_W (.)^+) = tr(C (U^T D^2 U)^-1) with
    # C = proj^T Sigma_W proj (r x r): no second SVD
    gram = p.left.T @ (p.left * (n_p / n_total).unsqueeze(1))
    chol = torch.linalg.cholesky(gram)
    out["nc1_weighted_sb"] = torch.cholesky_solve(c, chol).diagonal().sum() / nw / kp
    ginv = torch.cholesky_inverse(chol)
    out["nc1_weighted_sb_err"] = ROUNDING * (bvec @ ginv.abs() @ bvec) / nw / kp

    # per-class variances: from raw moments v_k = E||h||^2 - ||mu_k||^2, unclamped (a negative one has
    # lost its digits) with its rounding estimate; exact from centred statistics
    if raw is not None:
        mp = p.means.index_select(0, pres)
        sq = stats.sq_norms.index_select(0, pres) / n_p
        var = sq - (mp * mp).sum(1)
        var_err = ROUNDING * sq
    else:
        var = stats.class_variances().index_select(0, pres)
        var_err = torch.zeros_like(var)
    multi = n_p >= 2
    out["var"], out["var_err"], out["multi"] = var, var_err, multi.to(torch.float64)
    # CDNV (Galanti et al. 2022): mean over pairs of (v_k + v_j) / (2 ||mu_k - mu_j||^2)
    g = mt @ mt.T
    gd = g.diagonal()
    sqd = (gd.unsqueeze(1) + gd.unsqueeze(0) - 2 * g).clamp_min(1e-300)
    tri = torch.ones(kp, kp, dtype=torch.bool, device=dev).triu(1)
    pair = tri & multi.unsqueeze(1) & multi.unsqueeze(0)
    out["nc1_cdnv"] = _masked_mean((var.unsqueeze(1) + var.unsqueeze(0)) / (2 * sqd), pair)
    out["nc1_cdnv_err"] = _masked_mean((var_err.unsqueeze(1) + var_err.unsqueeze(0)) / (2 * sqd), pair)
    out["cdnv_pairs"] = pair.sum().to(torch.float64)

    # NC2 (Papyan et al. 2020; nc2_etf as Zhu et al. 2021)
    norms = mt.norm(dim=1)
    out["norm"] = norms
    out["nc2_equinorm"] = norms.std(unbiased=False) / norms.mean()
    cos = _cosines(mt)
    mean_cos = _masked_mean(cos, tri)
    out["nc2_equiangle"] = _masked_mean((cos - mean_cos) ** 2, tri).sqrt()
    out["nc2_maxangle"] = _masked_mean((cos + 1.0 / (kp - 1)).abs(), tri)
    out["nc2_etf"] = _rel_frobenius_t(g, _etf_target(kp, dev))

    if weights is not None:
        w = weights.detach().to(**f64)
        wp = w.index_select(0, pres)
        out["nc3"] = (wp / wp.norm() - mt / mt.norm()).norm() ** 2
        out["nc3_zhu"] = _rel_frobenius_t(wp @ mt.T, _etf_target(kp, dev))
        off = w @ p.mu_g
        if bias is not None:
            off = off + bias.detach().to(**f64)
        out["nc4_bias"] = off.norm()
        out["align_cos"] = (wp * mt).sum(1) / (wp.norm(dim=1) * norms).clamp_min(1e-300)
        out["w_norm"] = w.norm(dim=1)
    return out


def _raw_second(stats: FeatureStats) -> torch.Tensor | None:
    """The raw second moment sum_i h_i h_i^T when the statistics keep one (FeatureStats), else None."""
    try:
        return stats.second
    except NclabError:  # statistics without the d x d raw moment (two-pass SpanStats)
        return None


def _to_host(terms: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One device-to-host transfer: 0-d tensors become floats, vectors lists of floats."""
    flat = torch.cat([v.reshape(-1).to(torch.float64) for v in terms.values()]).cpu().tolist()
    out: dict[str, Any] = {}
    i = 0
    for key, v in terms.items():
        n = v.numel()
        out[key] = flat[i] if v.ndim == 0 else flat[i : i + n]
        i += n
    return out


def _checked(value: float, err: float) -> tuple[float | None, str | None]:
    """A quantity that cannot be negative, with its rounding estimate: the value to report, or None and
    the reason. Never a negative number."""
    if not math.isfinite(value):
        return None, "undefined: not finite (overflow or division by zero)"
    if err > RESOLUTION and err >= abs(value):
        return None, (
            f"lost digits: rounding error ~{err:.1e} is not small against the value {value:.2e} (the "
            "features' mean or norm is far larger than their within-class spread; centre or rescale them)"
        )
    if value < 0:
        if -value <= max(err, RESOLUTION):
            return 0.0, None  # collapsed to within rounding
        return None, f"lost digits: negative value {value:.2e} of a non-negative quantity"
    return value, None


def nc1_at(spectrum: dict[str, Any], rcond: float) -> float | None:
    """NC1 (Papyan et al., PNAS 2020: tr(Sigma_W Sigma_B^+)/K) at the rank tolerance ``rcond``, from a
    result's ``nc1_spectrum``: the sum over the eigenpairs of Sigma_B whose eigenvalue exceeds ``rcond``
    times the largest of v_j^T Sigma_W v_j / (K lambda_j). It can only drop eigenvalues the measurement
    kept, so it answers for any ``rcond`` at least the measurement's own. None when NC1 is undefined or the
    kept terms lost their digits.

    Example:
        >>> nc1_at({"ratio": [1.0, 0.1, 1e-9], "term": [0.5, 0.25, 4e4], "err": [0.0, 0.0, 0.0]}, 1e-6)
        0.75
    """
    _check_rcond(rcond)
    if spectrum.get("term") is None:
        return None
    kept = [(t, e) for r, t, e in zip(spectrum["ratio"], spectrum["term"], spectrum["err"]) if r > rcond]
    return _checked(sum(t for t, _ in kept), sum(e for _, e in kept))[0]


def nc_metrics(
    stats: FeatureStats,
    weights: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    center: str = "weighted",
    counts: Any = None,
    second: Any = None,
    allow_missing: bool = False,
    many: int = 100,
    few: int = 20,
    rcond: float | None = None,
    stable_rcond: float = STABLE_RCOND,
) -> dict[str, Any]:
    """All neural-collapse metrics computable from one pass, plus nc4/per-class nc1 from ``second``.

    Args:
        stats: the gathered statistics (on any device; the classifier moves there).
        weights: classifier rows W (K, d), optional; metrics needing W are None without it.
        bias: classifier bias b (K,), optional.
        center: ``"weighted"`` (mu_G = sample mean, Papyan et al.) or ``"balanced"`` (mean of mu_k).
        counts: training counts (K,) used to form many/medium/few groups (default: the label counts).
        second: a finished :class:`~nclab.metrics.second_pass.SecondPass` adding ``nc4`` and
            ``per_class.nc1`` (None without it).
        allow_missing: measure only the classes with samples instead of raising.
        many, few: group thresholds.
        rcond: rank tolerance of Sigma_B^+: eigenvalues of Sigma_B at most ``rcond`` times the largest
            count as zero (``numpy.linalg.pinv(Sigma_B, rcond, hermitian=True)``); None keeps every
            eigenvalue above the rounding level (the exact pseudo-inverse of Papyan et al.).
        stable_rcond: the relative eigenvalue threshold of ``nc1_stable`` (default 1e-3).

    Returns:
        A JSON-serialisable dict (floats, lists, None), keys as in docs/metrics.md. A metric that is
        undefined on these data, or whose float64 computation lost its digits, is None and
        ``result["undefined"][key]`` says why; ``result["flags"]`` lists conditions under which a
        reported value needs care (``"nc1_ill_conditioned"``).
    """
    k, d = stats.num_classes, stats.dim
    check_classifier(weights, bias, k, d)
    _check_rcond(rcond)
    if not (isinstance(stable_rcond, (int, float)) and 0.0 < stable_rcond < 1.0):
        raise NclabError(f"stable_rcond must be a number in (0, 1), got {stable_rcond!r}")
    # the second pass already prepared these statistics the same way: reuse its SVD of the means
    prep = getattr(second, "prep", None)
    if (
        prep is not None
        and second.stats is stats
        and prep.center == center
        and getattr(prep, "rcond", None) == rcond
        and torch.equal(prep.counts, stats.counts)
        and (allow_missing or len(prep.present) == k)
    ):
        p = prep
    else:
        p = prepare(stats, center=center, allow_missing=allow_missing, rcond=rcond)
    pres, mt = p.present, p.mt
    kp = len(pres)
    w = weights.detach().to(dtype=torch.float64, device=mt.device) if weights is not None else None
    h = _to_host(_device_terms(stats, p, w, bias, stable_rcond=stable_rcond))
    pres_list = pres.tolist()
    undefined: dict[str, str] = {}
    flags: list[str] = []
    out: dict[str, Any] = {
        "num_classes": k,
        "num_present": kp,
        "dim": d,
        "num_samples": int(sum(p.counts.tolist())),
        "center": center,
        "rank_sigma_b": int(p.proj.shape[1]),
        "nc1_rank": int(p.proj.shape[1]),
        "nc1_min_eig_ratio": h["nc1_min_eig_ratio"],
        "nc1_stable_rank": int(h["nc1_stable_rank"]),
        "nc1_spectrum": {
            "ratio": h["spectrum_ratio"],
            "term": h["spectrum_term"] if p.num_within >= 2 else None,
            "err": h["spectrum_err"],
        },
    }

    def put(key: str, value: float, err: float = 0.0) -> None:
        v, why = _checked(value, err)
        out[key] = v
        if why is not None:
            undefined[key] = why

    # NC1 and its variants: undefined without a class of two or more samples
    for key in ("nc1", "nc1_stable", "nc1_weighted_sb"):
        if p.num_within < 2:
            out[key] = None
            undefined[key] = NO_WITHIN
        else:
            put(key, h[key], h[key + "_err"])
    if h["cdnv_pairs"] < 1:
        out["nc1_cdnv"] = None
        undefined["nc1_cdnv"] = NO_PAIR
    else:
        put("nc1_cdnv", h["nc1_cdnv"], h["nc1_cdnv_err"])
    if (
        out["nc1"] is not None
        and out["nc1_stable"] is not None
        and out["nc1"] > max(ILL_CONDITIONED * out["nc1_stable"], RESOLUTION)
    ):
        flags.append("nc1_ill_conditioned")

    for key in ("nc2_equinorm", "nc2_equiangle", "nc2_maxangle", "nc2_etf"):
        put(key, h[key])

    var_list: list[float | None] = []
    for v, e, mlt in zip(h["var"], h["var_err"], h["multi"]):
        val, why = _checked(v, e) if mlt else (None, None)
        var_list.append(val)
        if why is not None:
            undefined.setdefault("per_class.var", why)
    per_class: dict[str, Any] = {
        "count": [int(c) for c in p.counts.tolist()],
        "var": _scatter_full(var_list, pres_list, k),
        "norm": _scatter_full(h["norm"], pres_list, k),
        "nc1": [None] * k,
        "align_cos": [None] * k,
        "w_norm": [None] * k,
    }
    wp = None
    for key in ("nc3", "nc3_zhu", "nc4_bias"):
        out[key] = None
    if w is not None:
        wp = w[pres]
        for key in ("nc3", "nc3_zhu", "nc4_bias"):
            put(key, h[key])
        per_class["align_cos"] = _scatter_full(h["align_cos"], pres_list, k)
        per_class["w_norm"] = h["w_norm"]

    out["nc4"] = None
    if second is not None:
        res = second.result()
        out["nc4"] = res["nc4"]
        per_class["nc1"] = res["per_class_nc1"]
    out["per_class"] = per_class

    group_counts = [int(c) for c in p.counts.tolist()] if counts is None else _counts_list(counts, k)
    out["groups"] = _group_metrics(group_counts, pres, mt, wp, per_class, many=many, few=few)
    out["align"] = _alignment(wp, p.basis, mt, pres, out["groups"]) if wp is not None else None
    out["seli"] = None
    if w is not None and counts is not None and kp == k:
        from nclab.geometry.seli import seli_distance

        # SELI (Thrampoulidis et al. 2022) at the training counts, with the centred class means
        out["seli"] = seli_distance(w, p.means, group_counts, center=True)
    out["undefined"] = undefined
    out["flags"] = flags
    return out


def _counts_list(counts: Any, k: int) -> list[int]:
    from nclab.metrics.validation import check_counts

    return check_counts(counts, k)  # k non-negative integers, with an error naming the problem


def _mean_or_none(vals: list[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return float(sum(v) / len(v)) if v else None


def _group_metrics(
    counts: list[int],
    pres: torch.Tensor,
    mt: torch.Tensor,
    wp: torch.Tensor | None,
    per_class: dict[str, Any],
    *,
    many: int,
    few: int,
) -> dict[str, Any]:
    """Per-group summaries; the minority-collapse index is the mean pairwise cosine of the
    classifier rows inside the group (Fang et al. 2021): 1 = collapsed, -1/(K-1) = ETF value."""
    pos = {c: i for i, c in enumerate(pres.tolist())}
    norms = mt.norm(dim=1)
    wn = wp.norm(dim=1) if wp is not None else None
    cos_m = _cosines(mt)
    cos_w = _cosines(wp) if wp is not None else None
    out: dict[str, Any] = {}
    for name, members in split_groups(counts, many=many, few=few).items():
        idx = [pos[c] for c in members if c in pos]
        g: dict[str, Any] = {"classes": members, "num_classes": len(members)}
        g["nc1"] = _mean_or_none([per_class["nc1"][c] for c in members])
        g["align_cos"] = _mean_or_none([per_class["align_cos"][c] for c in members])
        t = torch.tensor(idx, dtype=torch.long, device=mt.device)
        g["mean_cos"] = _pairs_mean_std(cos_m[t][:, t])[0] if len(idx) >= 2 else None
        g["mean_norm_rel"] = float(norms[t].mean() / norms.mean()) if idx else None
        g["w_cos"] = _pairs_mean_std(cos_w[t][:, t])[0] if cos_w is not None and len(idx) >= 2 else None
        g["w_norm_rel"] = float(wn[t].mean() / wn.mean()) if wn is not None and idx else None
        g["minority_collapse"] = g["w_cos"]
        out[name] = g
    assert set(out) == set(GROUPS)
    return out


def _alignment(
    wp: torch.Tensor, qm: torch.Tensor, mt: torch.Tensor, pres: torch.Tensor, groups: dict
) -> dict[str, Any]:
    """Principal angles between span(W) and span(M~) (``qm``: an orthonormal basis of the latter), and
    pairwise error-exponent ratios."""
    qw = _row_space(wp)
    cos = torch.linalg.svdvals(qw.T @ qm).clamp(0.0, 1.0)
    angles = torch.rad2deg(torch.arccos(cos))
    gw, gm, gx = wp @ wp.T, mt @ mt.T, wp @ mt.T
    dw = gw.diagonal()[:, None] + gw.diagonal()[None, :] - 2 * gw
    dm = gm.diagonal()[:, None] + gm.diagonal()[None, :] - 2 * gm
    dx = gx.diagonal()[:, None] + gx.diagonal()[None, :] - gx - gx.T
    ratio = dx**2 / (dw * dm).clamp_min(1e-300)  # cos^2 of the angle between w_i-w_j and mu_i-mu_j
    kp = len(pres)
    iu = torch.triu_indices(kp, kp, offset=1, device=ratio.device)
    vals = ratio[iu[0], iu[1]].clamp(0.0, 1.0)
    out: dict[str, Any] = {
        "principal_angles_deg": angles.tolist(),
        "principal_angle_mean_deg": float(angles.mean()) if angles.numel() else None,
        "ee_ratio_min": float(vals.min()),
        "ee_ratio_mean": float(vals.mean()),
        "ee_ratio_few_min": None,
        "ee_ratio_few_mean": None,
    }
    pos = {c: i for i, c in enumerate(pres.tolist())}
    few = [pos[c] for c in groups["few"]["classes"] if c in pos]
    if len(few) >= 2:
        t = torch.tensor(few, device=ratio.device)
        sub = ratio[t][:, t]
        j = torch.triu_indices(len(few), len(few), offset=1, device=ratio.device)
        fv = sub[j[0], j[1]].clamp(0.0, 1.0)
        out["ee_ratio_few_min"], out["ee_ratio_few_mean"] = float(fv.min()), float(fv.mean())
    return out
