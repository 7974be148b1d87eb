"""SELI geometry (geometry/seli.py) against the SVD of the N-level label matrix."""

import math

import numpy as np
import pytest
import torch

from nclab.errors import NclabError
from nclab.geometry import sel_matrix, seli_distance, seli_geometry


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
