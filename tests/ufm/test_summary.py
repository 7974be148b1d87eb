"""nclab.ufm.summary: the balanced factors of Z (the equality case of the nuclear norm's variational form)
and the per-count summary, checked on hand-made geometries."""

import math

import pytest
import torch

from nclab.geometry import seli_distance, simplex_etf
from nclab.ufm.summary import factorize, summarize


def test_factorize_gives_balanced_factors_of_z():
    g = torch.Generator().manual_seed(0)
    counts, lw, lh = [9, 4, 1], 2e-3, 5e-2
    z = torch.randn(3, 3, generator=g, dtype=torch.float64)
    w, hc = factorize(z, counts, lw, lh, dim=5)
    assert w.shape == hc.shape == (3, 5)
    torch.testing.assert_close(w @ hc.T, z)  # column k of Z: the logits W h_k of class k
    n = torch.tensor(counts, dtype=torch.float64)
    penalty = lw / 2 * (w**2).sum() + lh / 2 * (n * (hc**2).sum(1)).sum()
    nuclear = torch.linalg.matrix_norm(z * n.sqrt(), ord="nuc")
    assert float(penalty) == pytest.approx(math.sqrt(lw * lh) * float(nuclear), rel=1e-12)


def test_summarize_groups_by_count_largest_first():
    counts = [5, 5, 5, 1, 1]
    w = 2.0 * simplex_etf(5, 5, dtype=torch.float64)  # pairwise cosines -1/4
    hc = 0.5 * w.clone()
    hc[3:] = hc[3]  # the two minority features coincide
    out = summarize(w, hc, counts)
    major, minor = out["groups"]
    assert (major["count"], major["classes"], minor["count"], minor["classes"]) == (5, [0, 1, 2], 1, [3, 4])
    assert major["w_norm"] == pytest.approx(2.0) and major["h_norm"] == pytest.approx(1.0)
    assert major["w_cos"] == pytest.approx(-0.25) and minor["w_cos"] == pytest.approx(-0.25)
    assert minor["h_cos"] == pytest.approx(1.0)
    assert out["seli"] == seli_distance(w, hc, counts)
    assert summarize(w, hc, [5, 4, 3, 2, 1])["groups"][0]["w_cos"] is None  # one class: no pair
    assert summarize(torch.zeros(5, 5), hc, counts)["seli"] is None  # W = 0: no geometry to compare
