"""Classifier heads of the federated methods.

FedGELA (Fan et al., "Federated Learning with Bilateral Curation for Partially Class-Disjoint Data",
NeurIPS 2023): the global classifier is a fixed simplex ETF ``E`` (K x d, unit rows) that is never
trained nor sent; client k adapts it locally by scaling row c by ``phi_kc = C * n_kc / n_k`` (its own
label frequency), so a class it does not hold gets a zero row and logit 0:

    logits = tau * normalise(h) @ (diag(phi_k) E)^T

nclab's choices (the paper leaves them to its code, not public here): features are L2-normalised and
scaled by ``tau`` (default 10), as for ETF heads with normalised features; ``C`` defaults to K, so a
client with a uniform label distribution over all classes gets ``phi = 1``, the plain ETF used for the
generic (global) evaluation. Both are configurable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nclab.errors import NclabError


def gela_scales(client_counts: Sequence[int] | torch.Tensor, c: float | None = None) -> torch.Tensor:
    """``phi_c = C * n_kc / n_k`` for one client's class counts (C defaults to K).

    Example:
        >>> gela_scales([3, 1, 0, 0]).tolist()
        [3.0, 1.0, 0.0, 0.0]
    """
    n = torch.as_tensor(client_counts, dtype=torch.float64)
    if n.ndim != 1 or (n < 0).any() or n.sum() <= 0:
        raise NclabError(f"client counts must be a non-negative vector with a positive sum, got {n.tolist()}")
    const = float(len(n) if c is None else c)
    if not const > 0:
        raise NclabError(f"FedGELA constant C must be > 0, got {c}")
    return (const * n / n.sum()).to(torch.float32)


class ETFHead(nn.Module):
    """Fixed ETF classifier with per-class scales ``phi`` (both buffers, never trained).

    ``phi = 1`` is the plain fixed-ETF head (FedAvg + fixed ETF, and FedGELA's generic evaluation);
    :meth:`set_scales` with :func:`gela_scales` gives FedGELA's local head.

    Args:
        etf: ``(K, d)`` simplex ETF with unit rows (``nclab.geometry.simplex_etf``).
        tau: logit scale applied to the normalised features.
    """

    def __init__(self, etf: torch.Tensor, tau: float = 10.0):
        super().__init__()
        if etf.ndim != 2:
            raise NclabError(f"etf must be (K, d), got shape {tuple(etf.shape)}")
        if not tau > 0:
            raise NclabError(f"tau must be > 0, got {tau}")
        self.register_buffer("etf", etf.detach().clone())
        self.register_buffer("phi", torch.ones(etf.shape[0], dtype=etf.dtype))
        self.tau = float(tau)

    @property
    def weight(self) -> torch.Tensor:
        """Effective classifier rows ``diag(phi) E`` (K, d)."""
        return self.phi[:, None] * self.etf

    @property
    def bias(self) -> None:
        return None

    def set_scales(self, phi: torch.Tensor) -> None:
        """Set the per-class scales (FedGELA's local adaptation)."""
        if phi.shape != self.phi.shape:
            raise NclabError(f"scales must have shape {tuple(self.phi.shape)}, got {tuple(phi.shape)}")
        self.phi.copy_(phi.to(self.phi))

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, K)
        return self.tau * F.normalize(features, dim=1) @ self.weight.T

    def diagnostics(self) -> dict[str, float]:
        return {"phi_min": float(self.phi.min()), "phi_max": float(self.phi.max())}
