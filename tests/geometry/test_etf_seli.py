import math

import numpy as np
import pytest
import torch

from nclab.errors import NclabError
from nclab.geometry import helmert_basis, sel_matrix, seli_distance, seli_geometry, simplex_etf


@pytest.mark.parametrize("k,d", [(2, 1), (3, 2), (5, 5), (10, 64)])
@pytest.mark.parametrize("seed", [None, 3])
def test_simplex_etf_rows_and_angles(k, d, seed):
    g = None if seed is None else torch.Generator().manual_seed(seed)
    w = simplex_etf(k, d, generator=g, dtype=torch.float64)
    assert w.shape == (k, d)
    gram = w @ w.T
    expect = torch.full((k, k), -1.0 / (k - 1), dtype=torch.float64)
    expect.fill_diagonal_(1.0)
    torch.testing.assert_close(gram, expect, atol=1e-12, rtol=0)
    torch.testing.assert_close(w.sum(0), torch.zeros(d, dtype=torch.float64), atol=1e-12, rtol=0)


def test_simplex_etf_canonical_and_seeded_frames():
    k = 4
    w = simplex_etf(k, 6, dtype=torch.float64)
    c = torch.eye(k, dtype=torch.float64) - 1 / k
    torch.testing.assert_close(w[:, :k], math.sqrt(k / (k - 1)) * c)
    a = simplex_etf(k, 6, generator=torch.Generator().manual_seed(1))
    b = simplex_etf(k, 6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(
        a, simplex_etf(k, 6, generator=torch.Generator().manual_seed(2))
    )
    u = helmert_basis(5)
    torch.testing.assert_close(u.T @ u, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(u.sum(0), torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("k,d", [(5, 3), (1, 4)])
def test_simplex_etf_errors(k, d):
    with pytest.raises(NclabError):
        simplex_etf(k, d)


def _seli_bruteforce(counts):
    """N-level SELI from the SVD of Zhat (independent of the class-level formulas)."""
    labels = np.repeat(np.arange(len(counts)), counts)
    k = len(counts)
    zhat = np.eye(k)[:, labels] - 1.0 / k
    u, s, vt = np.linalg.svd(zhat, full_matrices=False)
    r = s > 1e-10
    u, s, vt = u[:, r], s[r], vt[r]
    gw = u @ np.diag(s) @ u.T
    gh_full = vt.T @ np.diag(s) @ vt
    first = np.searchsorted(labels, np.arange(k))  # one sample per class
    gh = gh_full[np.ix_(first, first)]
    z = zhat[:, first]
    return gw, gh, z, u, s, vt, labels, first


@pytest.mark.parametrize("counts", [[5, 5, 5], [8, 3, 1], [10, 10, 2, 2], [7, 4, 4, 1, 1]])
def test_seli_class_level_matches_svd_of_zhat(counts):
    gw, gh, z, *_ = _seli_bruteforce(counts)
    g = seli_geometry(counts)
    for got, ref in ((g.G_W, gw), (g.G_H, gh), (g.Z, z)):
        np.testing.assert_allclose(got.numpy(), ref / np.linalg.norm(ref), atol=1e-10)


def test_seli_balanced_is_simplex_etf():
    g = seli_geometry([4] * 6)
    c = (torch.eye(6, dtype=torch.float64) - 1 / 6) / math.sqrt(5)
    for x in (g.G_W, g.G_H, g.Z):
        torch.testing.assert_close(x, c)


def test_sel_matrix_columns():
    z = sel_matrix(torch.tensor([0, 2, 1]), 3)
    torch.testing.assert_close(z[:, 1], torch.tensor([-1 / 3, -1 / 3, 2 / 3], dtype=torch.float64))


def test_seli_distance_zero_at_seli_and_positive_elsewhere():
    counts = [9, 4, 1]
    gw, gh, z, u, s, vt, labels, first = _seli_bruteforce(counts)
    rng = np.random.default_rng(0)
    r, _ = np.linalg.qr(rng.normal(size=(6, len(s))))  # (d, r) orthonormal columns
    w = u @ np.diag(np.sqrt(s)) @ r.T  # (K, d): W W^T = U S U^T
    h = r @ np.diag(np.sqrt(s)) @ vt  # (d, N): H^T H = V S V^T, W H = Zhat
    means = h[:, first].T  # (K, d), classes collapse to one feature
    dist = seli_distance(torch.tensor(w), torch.tensor(means), counts)
    assert max(dist.values()) < 1e-10
    dist2 = seli_distance(torch.tensor(rng.normal(size=(3, 6))), torch.tensor(means), counts)
    assert dist2["W"] > 0.1 and dist2["Z"] > 0.1


def test_seli_bad_counts():
    with pytest.raises(NclabError):
        seli_geometry([3, 0, 2])
    with pytest.raises(NclabError):
        seli_geometry([3])
