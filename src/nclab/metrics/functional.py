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
singular values of M~ above ``s_max * max(K, d) * eps`` (numpy's matrix_rank rule). With K > d the
between-class space fills R^d, so ``nc1`` measures all within-class variance, not only the part in a
(K-1)-dimensional subspace.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from nclab.errors import DegenerateError, MissingClassError, NclabError, ShapeError
from nclab.metrics.groups import GROUPS, split_groups
from nclab.metrics.stats import FeatureStats
from nclab.metrics.validation import check_classifier

CENTERS = ("weighted", "balanced")


@dataclass
class Prepared:
    """Quantities every metric shares, computed once from the statistics (float64)."""

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


def prepare(stats: FeatureStats, *, center: str = "weighted", allow_missing: bool = False) -> Prepared:
    """Class means, global mean, centred means and the Sigma_B pseudo-inverse factor."""
    if center not in CENTERS:
        raise NclabError(f"center must be 'weighted' or 'balanced', got {center!r}")
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
    u, s, vh = torch.linalg.svd(mt, full_matrices=False)
    scale = float(mp.abs().max()) + float(s.max() if len(s) else 0.0)
    if len(s) == 0 or float(s[0]) <= 1e-12 * max(scale, 1e-300):
        raise DegenerateError("all class means are equal (Sigma_B = 0): NC1 is undefined")
    keep = s > _rank_tol(mt, mp)
    proj = vh[keep].T / s[keep]  # (d, r)
    num_within = float(counts[counts >= 2].sum())
    return Prepared(present, counts, means, mu_g, mt, proj, num_within, center, u[:, keep], vh[keep].T)


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
    iu = torch.triu_indices(k, k, offset=1)
    vals = mat[iu[0], iu[1]]
    if vals.numel() == 0:
        return None, None, vals
    return float(vals.mean()), float(vals.std(unbiased=False)), vals


def _cosines(x: torch.Tensor) -> torch.Tensor:
    n = x.norm(dim=1).clamp_min(1e-300)
    return (x @ x.T) / (n[:, None] * n[None, :])


def _etf_target(k: int) -> torch.Tensor:
    return (torch.eye(k, dtype=torch.float64) - 1.0 / k) / math.sqrt(k - 1)


def _rel_frobenius(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a / a.norm() - b / b.norm()).norm())


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


def _scatter_full(values: torch.Tensor, present: torch.Tensor, k: int) -> list[float | None]:
    out: list[float | None] = [None] * k
    for i, v in zip(present.tolist(), values.tolist()):
        out[i] = None if (isinstance(v, float) and math.isnan(v)) else float(v)
    return out


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
) -> dict[str, Any]:
    """All neural-collapse metrics computable from one pass, plus nc4/per-class nc1 from ``second``.

    Args:
        stats: the gathered statistics.
        weights: classifier rows W (K, d), optional; metrics needing W are None without it.
        bias: classifier bias b (K,), optional.
        center: ``"weighted"`` (mu_G = sample mean, Papyan et al.) or ``"balanced"`` (mean of mu_k).
        counts: training counts (K,) used to form many/medium/few groups (default: the label counts).
        second: a finished :class:`~nclab.metrics.second_pass.SecondPass` adding ``nc4`` and
            ``per_class.nc1`` (None without it).
        allow_missing: measure only the classes with samples instead of raising.
        many, few: group thresholds.

    Returns:
        A JSON-serialisable dict (floats, lists, None), keys as in docs/metrics.md.
    """
    k, d = stats.num_classes, stats.dim
    check_classifier(weights, bias, k, d)
    # the second pass already prepared these statistics the same way: reuse its SVD of the means
    prep = getattr(second, "prep", None)
    if (
        prep is not None
        and second.stats is stats
        and prep.center == center
        and torch.equal(prep.counts, stats.counts)
        and (allow_missing or len(prep.present) == k)
    ):
        p = prep
    else:
        p = prepare(stats, center=center, allow_missing=allow_missing)
    pres, mt = p.present, p.mt
    kp = len(pres)
    n_p = p.counts[pres]
    n_total = float(n_p.sum())
    out: dict[str, Any] = {
        "num_classes": k,
        "num_present": kp,
        "dim": d,
        "num_samples": int(n_total),
        "center": center,
        "rank_sigma_b": int(p.proj.shape[1]),
    }

    # NC1 (Papyan et al. 2020): tr(Sigma_W Sigma_B^+)/K with Sigma_W over classes with >= 2 samples
    sw = stats.within_scatter()
    nw = max(p.num_within, 1.0)
    t = p.proj.T @ sw  # (r, d)
    out["nc1"] = float((t * p.proj.T).sum() / nw)
    # Sigma_B weighted by n_k/N: D mt with D = diag(sqrt(n_k/N)) has the row space of mt = U S V^T, so
    # (mt^T D^2 mt)^+ = V S^-1 (U^T D^2 U)^-1 S^-1 V^T and tr(Sigma_W (.)^+) = tr(C (U^T D^2 U)^-1) with
    # C = proj^T Sigma_W proj (r x r): no second SVD
    c = t @ p.proj
    gram = p.left.T @ (p.left * (n_p / n_total)[:, None])
    chol = torch.linalg.cholesky(gram)
    out["nc1_weighted_sb"] = float(torch.cholesky_solve(c, chol).diagonal().sum() / nw / kp)

    var = stats.class_variances()[pres]  # (K_p,)
    multi = n_p >= 2
    # CDNV (Galanti et al. 2022): mean over pairs of (v_k + v_j) / (2 ||mu_k - mu_j||^2)
    g = mt @ mt.T
    sqd = (g.diagonal()[:, None] + g.diagonal()[None, :] - 2 * g).clamp_min(0)
    cd = (var[:, None] + var[None, :]) / (2 * sqd.clamp_min(1e-300))
    mask = multi[:, None] & multi[None, :]
    iu = torch.triu_indices(kp, kp, offset=1)
    cd_vals = cd[iu[0], iu[1]][mask[iu[0], iu[1]]]
    out["nc1_cdnv"] = float(cd_vals.mean()) if cd_vals.numel() else None

    # NC2 (Papyan et al. 2020; nc2_etf as Zhu et al. 2021)
    norms = mt.norm(dim=1)
    out["nc2_equinorm"] = float(norms.std(unbiased=False) / norms.mean())
    cos_m = _cosines(mt)
    mean_cos, std_cos, cos_vals = _pairs_mean_std(cos_m)
    out["nc2_equiangle"] = std_cos
    out["nc2_maxangle"] = float((cos_vals + 1.0 / (kp - 1)).abs().mean())
    out["nc2_etf"] = _rel_frobenius(g, _etf_target(kp))

    per_class: dict[str, Any] = {
        "count": p.counts.long().tolist(),
        "var": _scatter_full(torch.where(multi, var, torch.nan), pres, k),
        "norm": _scatter_full(norms, pres, k),
        "nc1": [None] * k,
        "align_cos": [None] * k,
        "w_norm": [None] * k,
    }
    w = weights.detach().to(torch.float64).cpu() if weights is not None else None
    b = bias.detach().to(torch.float64).cpu() if bias is not None else None
    wp = None
    for key in ("nc3", "nc3_zhu", "nc4_bias"):
        out[key] = None
    if w is not None:
        wp = w[pres]
        out["nc3"] = float((wp / wp.norm() - mt / mt.norm()).norm() ** 2)
        out["nc3_zhu"] = _rel_frobenius(wp @ mt.T, _etf_target(kp))
        off = w @ p.mu_g + (b if b is not None else 0.0)
        out["nc4_bias"] = float(off.norm())
        align = (wp * mt).sum(1) / (wp.norm(dim=1) * norms).clamp_min(1e-300)
        per_class["align_cos"] = _scatter_full(align, pres, k)
        per_class["w_norm"] = w.norm(dim=1).tolist()

    out["nc4"] = None
    if second is not None:
        res = second.result()
        out["nc4"] = res["nc4"]
        per_class["nc1"] = res["per_class_nc1"]
    out["per_class"] = per_class

    group_counts = p.counts.long().tolist() if counts is None else _counts_list(counts, k)
    out["groups"] = _group_metrics(group_counts, pres, mt, wp, per_class, many=many, few=few)
    out["align"] = _alignment(wp, p.basis, mt, pres, out["groups"]) if wp is not None else None
    out["seli"] = None
    if w is not None and counts is not None and kp == k:
        from nclab.geometry.seli import seli_distance

        # SELI (Thrampoulidis et al. 2022) at the training counts, with the centred class means
        out["seli"] = seli_distance(w, p.means, group_counts, center=True)
    return out


def _counts_list(counts: Any, k: int) -> list[int]:
    c = counts.tolist() if isinstance(counts, torch.Tensor) else list(counts)
    if len(c) != k:
        raise ShapeError(f"counts must have {k} entries (one per class), got {len(c)}")
    return [int(x) for x in c]


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
        t = torch.tensor(idx, dtype=torch.long)
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
    iu = torch.triu_indices(kp, kp, offset=1)
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
        t = torch.tensor(few)
        sub = ratio[t][:, t]
        j = torch.triu_indices(len(few), len(few), offset=1)
        fv = sub[j[0], j[1]].clamp(0.0, 1.0)
        out["ee_ratio_few_min"], out["ee_ratio_few_mean"] = float(fv.min()), float(fv.mean())
    return out
