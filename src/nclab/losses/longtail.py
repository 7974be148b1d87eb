"""Long-tailed losses. Each takes the training class counts at construction (papers.md sections 7, 9).

- ``focal``: Lin et al. (ICCV 2017): -(1 - p_y)^gamma log p_y.
- ``cb``: Cui et al. (CVPR 2019) class-balanced weights w_k = (1 - beta)/(1 - beta^{n_k}), normalised to
  sum K, on softmax CE or focal; batch reduction as the LDAM-DRW code's ``F.cross_entropy(weight=w)``
  (weighted mean).
- ``ldam``: Cao et al. (NeurIPS 2019): margins m_k proportional to n_k^{-1/4} with max ``max_margin``
  (0.5), loss CE(s (z - m_y e_y), y) with scale ``scale`` (30); deferred re-weighting (DRW) from epoch
  ``drw_epoch`` with the CB weights of beta = 0.9999 (their public code's values), via ``set_epoch``.
- ``la``: logit-adjusted loss (Menon et al., ICLR 2021): CE(z + tau log pi, y), pi = n/N; post-hoc
  adjustment :func:`posthoc_logit_adjust` subtracts tau log pi at prediction time.
- ``balanced_softmax``: Ren et al. (NeurIPS 2020): CE(z + log n, y).
- ``dr``: dot-regression for fixed-ETF heads (Yang et al., NeurIPS 2022, papers.md section 7):
  1/2 (w_y^T h - ||w_y|| ||h||)^2 / ||h|| with ||h|| detached, on L2-normalised features h as in their
  recipe (``normalize=False`` applies it to raw features); called with features and the head's weight
  (``needs_features = True``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nclab.errors import ConfigError
from nclab.losses.base import register_loss


def _counts(counts: Sequence[int]) -> torch.Tensor:
    c = torch.as_tensor(list(counts), dtype=torch.float64)
    if c.ndim != 1 or len(c) < 2 or (c <= 0).any():
        raise ConfigError(f"counts must be >= 2 positive class counts, got {list(counts)}")
    return c


def class_balanced_weights(counts: Sequence[int], beta: float) -> torch.Tensor:
    """(1 - beta)/(1 - beta^{n_k}), normalised to sum K (Cui et al. 2019)."""
    if not 0 <= beta < 1:
        raise ConfigError(f"beta must be in [0, 1), got {beta}")
    c = _counts(counts)
    w = (1 - beta) / (1 - beta**c)
    return (w / w.sum() * len(c)).float()


class FocalLoss(nn.Module):
    def __init__(self, counts: Sequence[int], gamma: float = 1.0, weight: torch.Tensor | None = None):
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("weight", weight if weight is not None else torch.ones(len(counts)))
        self.weighted = weight is not None

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), 1).gather(1, targets[:, None]).squeeze(1)
        q = 1 - logp.exp()
        # (1 - p)^gamma; where p rounds to 1 (q = 0) its value is 0 (1 for gamma = 0) and no gradient
        # flows through it: d q^gamma / dq = gamma q^(gamma - 1) is infinite at 0 for gamma < 1, and
        # inf x 0 made the loss NaN (seen with gamma = 0.5 on a confident batch)
        pos = q > 0
        mod = torch.where(
            pos, torch.where(pos, q, torch.ones_like(q)) ** self.gamma, 0.0 if self.gamma else 1.0
        )
        loss = -mod * logp
        if self.weighted:
            w = self.weight[targets]
            return (w * loss).sum() / w.sum()
        return loss.mean()


class WeightedCE(nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, weight=self.weight)


class LDAMLoss(nn.Module):
    """LDAM (Cao et al., NeurIPS 2019): CE on ``scale * (z - Delta_y e_y)`` with Delta_k proportional to
    n_k^(-1/4), the largest equal to ``max_margin``. ``z`` are cosine logits in Cao et al. (their
    NormedLinear layer): pair it with ``head: {name: cosine, kwargs: {tau: 1.0}}``; on raw linear logits
    the factor ``scale`` = 30 multiplies unbounded logits and training can diverge."""

    def __init__(
        self,
        counts: Sequence[int],
        max_margin: float = 0.5,
        scale: float = 30.0,
        drw_epoch: int | None = None,
        beta: float = 0.9999,
    ):
        super().__init__()
        c = _counts(counts)
        m = c**-0.25
        self.register_buffer("margins", (m * (max_margin / m.max())).float())
        self.register_buffer("drw_weights", class_balanced_weights(counts, beta))
        self.scale, self.drw_epoch = float(scale), drw_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """0-based epoch; re-weighting is on from ``drw_epoch``."""
        self.epoch = int(epoch)

    @property
    def reweighting(self) -> bool:
        return self.drw_epoch is not None and self.epoch >= self.drw_epoch

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z = logits.float() - F.one_hot(targets, logits.shape[1]) * self.margins[None, :]
        return F.cross_entropy(self.scale * z, targets, weight=self.drw_weights if self.reweighting else None)


class LogitShiftCE(nn.Module):
    """CE on logits + shift (logit adjustment and Balanced Softmax)."""

    def __init__(self, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", shift.float())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float() + self.shift, targets)


def posthoc_logit_adjust(logits: torch.Tensor, counts: Sequence[int], tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al. 2021): z - tau log pi; only predictions change."""
    c = _counts(counts)
    return logits - tau * torch.log(c / c.sum()).to(logits)


class DotRegression(nn.Module):
    needs_features = True

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = bool(normalize)

    def forward(self, features: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.normalize:  # Yang et al. apply DR to L2-normalised features
            features = F.normalize(features, dim=1)
        w = weight[targets].to(features)
        hn = features.norm(dim=1).detach().clamp_min(1e-12)
        dot = (w * features).sum(1)
        return (0.5 * (dot - w.norm(dim=1) * hn) ** 2 / hn).mean()


@register_loss
def focal(counts: Sequence[int], *, gamma: float = 1.0) -> nn.Module:
    """Focal loss (gamma)."""
    _counts(counts)
    return FocalLoss(counts, gamma)


@register_loss
def cb(
    counts: Sequence[int], *, beta: float = 0.9999, base: str = "softmax", gamma: float | None = None
) -> nn.Module:
    """Class-balanced loss (beta) on softmax CE or focal (``base``; focal's ``gamma``, default 1)."""
    w = class_balanced_weights(counts, beta)
    if base == "softmax":
        if gamma is not None:
            raise ConfigError(
                "cb: gamma is the focal loss's and base=softmax has none; remove loss.kwargs.gamma or set "
                "loss.kwargs.base=focal"
            )
        return WeightedCE(w)
    if base == "focal":
        return FocalLoss(counts, 1.0 if gamma is None else gamma, weight=w)
    raise ConfigError(f"cb base must be 'softmax' or 'focal', got {base!r}")


@register_loss
def ldam(
    counts: Sequence[int],
    *,
    max_margin: float = 0.5,
    scale: float = 30.0,
    drw_epoch: int | None = None,
    beta: float = 0.9999,
) -> nn.Module:
    """LDAM with optional deferred re-weighting (DRW) from ``drw_epoch``."""
    return LDAMLoss(counts, max_margin, scale, drw_epoch, beta)


@register_loss
def la(counts: Sequence[int], *, tau: float = 1.0) -> nn.Module:
    """Logit-adjusted loss: CE(z + tau log pi)."""
    c = _counts(counts)
    return LogitShiftCE(tau * torch.log(c / c.sum()))


@register_loss
def balanced_softmax(counts: Sequence[int]) -> nn.Module:
    """Balanced Softmax: CE(z + log n)."""
    return LogitShiftCE(torch.log(_counts(counts)))


@register_loss
def dr(counts: Sequence[int], *, normalize: bool = True) -> nn.Module:
    """Dot-regression loss for fixed-ETF heads (call with features, targets, head weight); features are
    L2-normalised first unless ``normalize=False``."""
    _counts(counts)
    return DotRegression(normalize)


__all__ = ["class_balanced_weights", "posthoc_logit_adjust"]
