"""Space alignment in the UFM (nclab.ufm.spa; `nclab ufm reproduce spa`: tests/ufm/test_reproduce.py)."""

import math

import pytest
import torch

from nclab.errors import NclabError
from nclab.geometry import simplex_etf
from nclab.ufm import UFM
from nclab.ufm.spa import geometry, run_spa_ufm


def test_without_strategy_it_is_plain_gd():
    counts = [6, 6, 2, 2]
    hist = run_spa_ufm(counts, "none", lam=1e-2, steps=200, lr=0.5, record_every=200)
    ref = UFM(counts, dim=6, lambda_w=1e-2, lambda_h=1e-2, bias=False).fit(steps=200, lr=0.5)
    assert hist[-1]["objective"] == pytest.approx(ref.objective, rel=1e-5)


def test_geometry_by_hand():
    counts = [2, 2, 1, 1]
    ufm = UFM(counts, dim=4, bias=False)
    m = simplex_etf(4, 4).to(torch.float64)  # (K, d) rows: a simplex ETF, centred
    h = m[ufm.labels].clone()
    g = geometry(ufm, m.clone(), h, [2, 3])
    assert g["etf_W"] == pytest.approx(0.0, abs=1e-6)
    assert g["align_cos"] == pytest.approx(1.0, abs=1e-6)
    assert g["minority_cos"] == pytest.approx(-1 / 3, abs=1e-6)  # ETF rows: cos = -1/(K-1)
    w = m.clone()
    w[3] = w[2]
    assert geometry(ufm, w, h, [2, 3])["minority_cos"] == pytest.approx(1.0)


def test_slerp_raises_alignment_and_proj_runs():
    counts = [50] * 3 + [1] * 3
    none = run_spa_ufm(counts, "none", lam=1e-3, steps=1500, record_every=1500)[-1]
    slerp = run_spa_ufm(counts, "slerp", lam=1e-3, steps=1500, record_every=1500, alpha=0.05)[-1]
    proj = run_spa_ufm(counts, "proj", lam=1e-3, steps=1500, record_every=1500)[-1]
    assert slerp["align_cos"] > none["align_cos"]
    assert all(math.isfinite(v) for v in proj.values())


def test_bad_strategy():
    with pytest.raises(NclabError, match="strategy"):
        run_spa_ufm([3, 1], "bogus")
