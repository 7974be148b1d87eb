"""Fixed and nearest simplex-ETF heads, and the cosine (normalised) head.

- ``fixed_etf``: W a simplex ETF (papers.md sections 2 and 7; Zhu et al. 2021, Yang et al. 2022), stored
  as a buffer (never a parameter, never in the optimizer); optional learnable bias.
- ``nearest_etf``: Markou et al. (NeurIPS 2024), papers.md section 6: W = sqrt(K/(K-1)) C P*^T with
  P* the nearest ETF to an EMA of the centred class means (:func:`nclab.geometry.nearest_etf`), logits
  on L2-normalised features scaled by ``tau``; ``update_means(features, labels)`` feeds the EMA (the
  training loop calls it each step through a hook) and recomputes P*.
- ``cosine``: cos(w_k, h) scaled by ``tau`` (normalised features and weights; section 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nclab.errors import ConfigError
from nclab.geometry import etf_classifier, nearest_etf, simplex_etf
from nclab.heads.base import register_head


class FixedETFHead(nn.Module):
    """Logits ``scale * W h + b`` with W a fixed simplex ETF (K, d) buffer."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        bias: bool = False,
        seed: int = 0,
        scale: float = 1.0,
        normalize: bool = False,
    ):
        super().__init__()
        if in_features < num_classes - 1:
            raise ConfigError(
                f"a fixed ETF head needs feature dim d >= K-1 = {num_classes - 1}, got d={in_features}"
            )
        etf = simplex_etf(num_classes, in_features, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("weight", etf)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None
        self.scale, self.normalize = float(scale), bool(normalize)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            h = F.normalize(h, dim=1)
        out = self.scale * h @ self.weight.T
        return out + self.bias if self.bias is not None else out

    def diagnostics(self) -> dict[str, float]:
        return {"w_norm_mean": float(self.weight.norm(dim=1).mean())}


class NearestETFHead(nn.Module):
    """Nearest-ETF classifier on normalised features (Markou et al. 2024)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        tau: float = 5.0,
        momentum: float = 0.9,
        delta: float = 1e-3,
        seed: int = 0,
    ):
        super().__init__()
        if in_features < num_classes:
            raise ConfigError(
                f"a nearest-ETF head needs feature dim d >= K = {num_classes}, got d={in_features}"
            )
        self.tau, self.momentum, self.delta = float(tau), float(momentum), float(delta)
        etf = simplex_etf(num_classes, in_features, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("weight", etf)
        self.register_buffer("means", torch.zeros(num_classes, in_features))
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))
        self.register_buffer("p_prev", torch.zeros(in_features, num_classes))
        # host-side caches: every class seen (``seen`` only grows), a solution in ``p_prev`` (None: unknown)
        self._ready: bool = False
        self._solved: bool | None = None
        self.bias = None

    @torch.no_grad()
    def update_means(self, features: torch.Tensor, labels: torch.Tensor, *, refresh: bool = True) -> None:
        """EMA of the class means from a batch (absent classes unchanged; a class's first batch sets
        its mean), then, with ``refresh``, the nearest ETF (:meth:`refresh`). Masked arithmetic on the
        device: no host synchronisation."""
        k = self.means.shape[0]
        f = features.detach().float()
        cnt = torch.zeros(k, device=f.device).index_add_(0, labels, torch.ones_like(labels, dtype=f.dtype))
        sums = torch.zeros_like(self.means).index_add_(0, labels, f)
        present = (cnt > 0)[:, None]
        batch = sums / cnt.clamp_min(1)[:, None]
        ema = self.momentum * self.means + (1 - self.momentum) * batch
        new = torch.where(self.seen[:, None], ema, batch)
        self.means.copy_(torch.where(present, new, self.means))
        self.seen |= present[:, 0]
        if refresh:
            self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """W <- the nearest ETF to the centred, normalised EMA means (with the proximal term on the
        previous solution), once every class has been seen; in place, so call it outside a
        forward/backward pair (the training loop calls it after the optimizer step).

        One host read until every class has been seen, none afterwards. The polar factor is computed
        in float64 on the CPU build and in float32 on a GPU (where float64 SVDs are slow); the
        solution is orthonormal to the precision of that dtype either way."""
        if not self._ready:
            if not bool(self.seen.all()):
                return
            self._ready = True
        y = (self.means - self.means.mean(0)).T  # (d, K) centred
        y = y / y.norm().clamp_min(1e-12)
        dtype = torch.float32 if y.is_cuda else torch.float64
        if self._solved is None:  # a previous solution in p_prev (e.g. after a resume): one host read
            self._solved = bool(self.p_prev.abs().sum() > 0)
        prev = self.p_prev.to(dtype) if self._solved else None
        p = nearest_etf(y.to(dtype), prev, self.delta, check_finite=False).float()
        self.p_prev.copy_(p)
        self.weight.copy_(etf_classifier(p))
        self._solved = True

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._ready, self._solved = False, None  # re-derived from the loaded buffers on first use

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.tau * F.normalize(h, dim=1) @ self.weight.T

    def diagnostics(self) -> dict[str, float]:
        return {"classes_seen": float(self.seen.float().mean())}


class CosineHead(nn.Module):
    """Logits ``tau * cos(w_k, h)`` with learnable W (Yaras et al. 2022's normalised model)."""

    def __init__(self, in_features: int, num_classes: int, *, tau: float = 16.0):
        super().__init__()
        if not tau > 0:
            raise ConfigError(f"tau must be > 0, got {tau}")
        self.weight = nn.Parameter(torch.randn(num_classes, in_features) / in_features**0.5)
        self.tau = float(tau)
        self.bias = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.tau * F.normalize(h, dim=1) @ F.normalize(self.weight, dim=1).T

    def diagnostics(self) -> dict[str, float]:
        return {"w_norm_mean": float(self.weight.detach().norm(dim=1).mean())}


@register_head
def fixed_etf(
    in_features: int,
    num_classes: int,
    *,
    bias: bool = False,
    seed: int = 0,
    scale: float = 1.0,
    normalize: bool = False,
) -> nn.Module:
    """Fixed simplex-ETF classifier (buffer), optional learnable bias."""
    return FixedETFHead(in_features, num_classes, bias=bias, seed=seed, scale=scale, normalize=normalize)


@register_head(name="nearest_etf")
def _nearest_etf(
    in_features: int,
    num_classes: int,
    *,
    tau: float = 5.0,
    momentum: float = 0.9,
    delta: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """Nearest simplex ETF to the EMA of centred class means (Markou et al. 2024)."""
    return NearestETFHead(in_features, num_classes, tau=tau, momentum=momentum, delta=delta, seed=seed)


@register_head
def cosine(in_features: int, num_classes: int, *, tau: float = 16.0) -> nn.Module:
    """Cosine classifier with temperature."""
    return CosineHead(in_features, num_classes, tau=tau)
