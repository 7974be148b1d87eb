"""The simplex equiangular tight frame (ETF).

Papyan, Han and Donoho (PNAS 2020); Zhu et al. (NeurIPS 2021), papers.md section 2: a simplex ETF
is ``W = sqrt(K/(K-1)) C P^T`` with C = I - 11^T/K and P (d x K) with orthonormal columns; its K rows
have unit norm and pairwise cosine -1/(K-1). Only the (K-1)-dimensional centred part of P matters,
so nclab builds ``W = sqrt(K/(K-1)) U Q^T`` with U (K x K-1) an orthonormal basis of the centred
space (C = U U^T) and Q (d x K-1) orthonormal, which needs only d >= K-1.
"""

from __future__ import annotations

import math

import torch

from nclab.errors import NclabError


def centering_matrix(k: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """C = I_K - 11^T/K."""
    return torch.eye(k, dtype=dtype) - 1.0 / k


def helmert_basis(k: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A fixed orthonormal basis (K x K-1) of the vectors orthogonal to 1 (Helmert's contrasts).

    Column j (0-based) is ``(1, ..., 1, -(j+1), 0, ..., 0) / sqrt((j+1)(j+2))`` with j+1 ones.
    """
    u = torch.zeros(k, k - 1, dtype=dtype)
    for j in range(k - 1):
        u[: j + 1, j] = 1.0
        u[j + 1, j] = -(j + 1.0)
        u[:, j] /= math.sqrt((j + 1.0) * (j + 2.0))
    return u


def _check_k_dim(num_classes: int, dim: int) -> None:
    if num_classes < 2:
        raise NclabError(f"a simplex ETF needs at least 2 classes, got {num_classes}")
    if dim < num_classes - 1:
        raise NclabError(
            f"a simplex ETF of {num_classes} classes needs dim >= K-1 = {num_classes - 1}, got dim={dim}"
        )


def simplex_etf(
    num_classes: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Rows of a simplex ETF: (K, dim), unit norms, pairwise cosines -1/(K-1).

    Args:
        num_classes: K >= 2.
        dim: feature dimension, >= K-1.
        generator: draws a random orthonormal frame Q (QR of a Gaussian matrix); without it the frame
            is canonical: for dim >= K the rows are sqrt(K/(K-1)) (e_k - 1/K) padded with zeros, for
            dim = K-1 they are sqrt(K/(K-1)) times the rows of :func:`helmert_basis`.
        dtype: output dtype.

    Example:
        >>> w = simplex_etf(3, 3)
        >>> [round(float(x), 4) for x in (w @ w.T)[0]]
        [1.0, -0.5, -0.5]
    """
    _check_k_dim(num_classes, dim)
    k = num_classes
    scale = math.sqrt(k / (k - 1))
    if generator is None:
        if dim >= k:
            w = torch.zeros(k, dim, dtype=torch.float64)
            w[:, :k] = scale * centering_matrix(k)
        else:
            w = scale * helmert_basis(k)
        return w.to(dtype)
    g = torch.randn(dim, k - 1, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)  # (dim, K-1)
    q = q * torch.sign(torch.diagonal(r))  # unique QR: positive diagonal
    return (scale * helmert_basis(k) @ q.T).to(dtype)
