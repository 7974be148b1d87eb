"""The simplex ETF (geometry/etf.py): Gram matrix, centring, canonical and seeded frames, Helmert basis."""

import math

import numpy as np
import pytest
import torch

from nclab.errors import NclabError
from nclab.geometry import centering_matrix, helmert_basis, simplex_etf


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


@pytest.mark.parametrize("k", [2, 3, 7])
def test_centering_matrix_is_the_projection_orthogonal_to_ones(k):
    c = centering_matrix(k)
    ref = np.eye(k) - np.ones((k, k)) / k  # by hand: I - 11^T/K
    np.testing.assert_allclose(c.numpy(), ref, rtol=0, atol=1e-15)
    torch.testing.assert_close(c @ c, c)  # idempotent
    torch.testing.assert_close(c @ torch.ones(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64))
    assert centering_matrix(k, dtype=torch.float32).dtype == torch.float32


def test_helmert_basis_columns_by_hand():
    u = helmert_basis(3)
    ref = np.array(
        [[1 / math.sqrt(2), 1 / math.sqrt(6)], [-1 / math.sqrt(2), 1 / math.sqrt(6)], [0, -2 / math.sqrt(6)]]
    )
    np.testing.assert_allclose(u.numpy(), ref, rtol=0, atol=1e-15)
    # U U^T is the centring matrix
    torch.testing.assert_close(u @ u.T, centering_matrix(3))


def test_simplex_etf_at_dim_k_minus_1_uses_the_helmert_rows():
    w = simplex_etf(4, 3, dtype=torch.float64)
    torch.testing.assert_close(w, math.sqrt(4 / 3) * helmert_basis(4))
