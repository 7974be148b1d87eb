"""FedGELA's head (registered as ``gela``) and its per-client scales.

FedGELA (Fan et al., "Federated Learning with Bilateral Curation for Partially Class-Disjoint Data",
NeurIPS 2023): the global classifier is a fixed simplex ETF ``E`` (K x d, unit rows) that is never
trained nor sent; client k adapts it locally by scaling row c by ``phi_kc = C * n_kc / n_k`` (its own
label frequency), so a class it does not hold gets a zero row and logit 0:

    logits = tau * normalise(h) @ (diag(phi_k) E)^T

nclab's choices (the paper leaves them to its code, not public here): features are L2-normalised and
scaled by ``tau`` (default 10), as for ETF heads with normalised features; ``C`` defaults to K, so a
client with a uniform label distribution over all classes gets ``phi = 1``, the plain ETF used for the
generic (global) evaluation. Both are configurable, and so are a floor and a cap on a held class's
scale and a scale for the classes a client does not hold (:func:`gela_scales`), nclab's variants for
long-tailed clients.

``gela_authors`` is FedGELA as its authors' code runs it (../shared/fedgela_code.md): the ETF sees a
trained projection ``z = BN(W2 relu(W1 h))`` (MLP h -> h -> p, then an affine BatchNorm1d(p)), not the
normalised feature, and the logits are divided by a temperature ``T`` (default 0.2):

    logits = (z @ (diag(phi_k) E)^T) / T
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nclab.errors import ConfigError, NclabError
from nclab.geometry import simplex_etf
from nclab.heads.base import register_head


def gela_scales(
    client_counts: Sequence[int] | torch.Tensor,
    c: float | None = None,
    floor: float = 0.0,
    cap: float | None = None,
    missing: float = 0.0,
) -> torch.Tensor:
    """``phi_c = C * n_kc / n_k`` for one client's class counts (C defaults to K; Fan et al. 2023).

    nclab's variants for long-tailed clients (docs/fed.md, "FedGELA variants"); the defaults are the
    paper's rule:

    - ``floor`` > 0: a held class gets at least ``floor``, so a rare class paired with a frequent one
      is not scaled towards 0;
    - ``cap``: a held class gets at most ``cap`` (``floor = cap = 1`` scales every held class by 1);
    - ``missing`` > 0: a class the client does not hold gets this scale instead of 0, so its column
      stays in the local softmax (``missing = 1`` with every held class at 1 is the plain ETF).

    Example:
        >>> gela_scales([3, 1, 0, 0]).tolist()
        [3.0, 1.0, 0.0, 0.0]
        >>> gela_scales([6, 1, 1], floor=1.0).tolist()  # without the floor: 2.25, 0.375, 0.375
        [2.25, 1.0, 1.0]
        >>> gela_scales([3, 1, 0, 0], cap=2.0, missing=0.5).tolist()
        [2.0, 1.0, 0.5, 0.5]
    """
    n = torch.as_tensor(client_counts, dtype=torch.float64)
    if n.ndim != 1 or (n < 0).any() or n.sum() <= 0:
        raise NclabError(f"client counts must be a non-negative vector with a positive sum, got {n.tolist()}")
    const = float(len(n) if c is None else c)
    if not const > 0:
        raise NclabError(f"FedGELA constant C must be > 0, got {c}")
    if not floor >= 0:
        raise NclabError(f"FedGELA scale floor must be >= 0, got {floor}")
    if cap is not None and not (cap > 0 and cap >= floor):
        raise NclabError(f"FedGELA scale cap must be > 0 and >= the floor ({floor}), got {cap}")
    if not missing >= 0:
        raise NclabError(f"FedGELA scale of a missing class must be >= 0, got {missing}")
    phi = (const * n / n.sum()).clamp(min=float(floor), max=None if cap is None else float(cap))
    phi = torch.where(n > 0, phi, torch.full_like(phi, float(missing)))
    return phi.to(torch.float32)


class _ScaledETF(nn.Module):
    """A fixed simplex ETF ``E`` (K x dim, drawn from ``seed``) with per-class scales ``phi``, both
    buffers, never trained: the classifier rows ``diag(phi) E`` of both FedGELA heads."""

    def _init_etf(self, num_classes: int, dim: int, seed: int) -> None:
        etf = simplex_etf(num_classes, dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("etf", etf)
        self.register_buffer("phi", torch.ones(num_classes, dtype=etf.dtype))
        self.bias = None

    @property
    def weight(self) -> torch.Tensor:
        """Effective classifier rows ``diag(phi) E`` (K, dim)."""
        return self.phi[:, None] * self.etf

    def set_scales(self, phi: torch.Tensor) -> None:
        """Set the per-class scales (FedGELA's local adaptation)."""
        if phi.shape != self.phi.shape:
            raise NclabError(f"scales must have shape {tuple(self.phi.shape)}, got {tuple(phi.shape)}")
        self.phi.copy_(phi.to(self.phi))

    def diagnostics(self) -> dict[str, float]:
        return {"phi_min": float(self.phi.min()), "phi_max": float(self.phi.max())}


class GELAHead(_ScaledETF):
    """Fixed simplex-ETF classifier (drawn from ``seed``) with per-class scales ``phi`` on normalised
    features scaled by ``tau``; ``E`` and ``phi`` are buffers, never trained.

    ``phi = 1`` is the plain fixed ETF (FedGELA's generic evaluation); :meth:`set_scales` with
    :func:`gela_scales` gives a client's local head.
    """

    def __init__(self, in_features: int, num_classes: int, *, tau: float = 10.0, seed: int = 0):
        super().__init__()
        if not tau > 0:
            raise ConfigError(f"tau must be > 0, got {tau}")
        self._init_etf(num_classes, in_features, seed)
        self.tau = float(tau)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, K)
        return self.tau * F.normalize(features, dim=1) @ self.weight.T


class GELAAuthorsHead(_ScaledETF):
    """FedGELA's head as its authors' code runs it (Fan et al. 2023): a trained projection MLP
    ``Linear(h, h) - ReLU - Linear(h, p)`` and an affine ``BatchNorm1d(p)`` give ``z``; the logits are
    ``z @ (diag(phi) E)^T / T`` with ``E`` a fixed simplex ETF (K x p, drawn from ``seed``) and ``phi``
    the client's scales (buffers, never trained). No L2 normalisation.

    :meth:`project` is the feature the ETF sees (``z``), which the NC metrics read; ``weight`` is
    ``diag(phi) E`` as for :class:`GELAHead`.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        p: int | None = None,
        temperature: float = 0.2,
        seed: int = 0,
    ):
        super().__init__()
        dim = in_features if p is None else int(p)
        if not temperature > 0:
            raise ConfigError(f"gela_authors: temperature must be > 0, got {temperature}")
        if dim < num_classes - 1:
            raise ConfigError(
                f"gela_authors: projection dim p must be >= K-1 = {num_classes - 1} for the ETF, got p={dim}"
            )
        self.projection = nn.Sequential(
            nn.Linear(in_features, in_features), nn.ReLU(), nn.Linear(in_features, dim)
        )
        self.bn = nn.BatchNorm1d(dim)
        self._init_etf(num_classes, dim, seed)
        self.temperature = float(temperature)

    def project(self, features: torch.Tensor) -> torch.Tensor:  # (B, h) -> (B, p)
        """The feature the ETF sees: ``BN(projection(h))``."""
        return self.bn(self.projection(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, h) -> (B, K)
        return self.project(features) @ self.weight.T / self.temperature


@register_head
def gela(in_features: int, num_classes: int, *, tau: float = 10.0, seed: int = 0) -> nn.Module:
    """FedGELA's locally scaled fixed ETF (Fan et al. 2023)."""
    return GELAHead(in_features, num_classes, tau=tau, seed=seed)


@register_head
def gela_authors(
    in_features: int, num_classes: int, *, p: int | None = None, temperature: float = 0.2, seed: int = 0
) -> nn.Module:
    """FedGELA's head as its authors' code runs it: projection MLP + BatchNorm, ETF logits over a
    temperature (Fan et al. 2023; ``p`` defaults to the backbone's width)."""
    return GELAAuthorsHead(in_features, num_classes, p=p, temperature=temperature, seed=seed)
