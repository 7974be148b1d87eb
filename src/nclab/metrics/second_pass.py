"""The second pass over features: NC4 and per-class NC1, which need the class means first.

It touches each feature once more and never re-runs the model: per batch, one product of the
centred features h - mu_G with ``[P | W^T]`` gives the Sigma_B-projected residuals (per-class NC1, as
P^T(h - mu_G) - P^T(mu_y - mu_G)) and the linear decisions; the nearest-class-centre scores come from
the projection itself (the centred means lie in span(P)), an (N, r) x (r, K) product instead of
(N, d) x (d, K) (NC4, Papyan et al., PNAS 2020). In float32 the projected residual loses about 1e-7 times the
between/within ratio in relative accuracy, which matters only near exact collapse; pass float64
features for per-class NC1 of nearly collapsed features.
"""

from __future__ import annotations

from typing import Any

import torch

from nclab.metrics.functional import Prepared, prepare
from nclab.metrics.stats import FeatureStats
from nclab.metrics.validation import check_classifier, check_features, check_labels


class SecondPass:
    """Accumulates nc4 and per-class nc1 over batches, given the first pass's statistics.

    Everything lives on the statistics' device (float64 constants, accumulators); the classifier and
    each batch are moved there, and ``update`` makes no host synchronisation with ``validate=False``.

    Args:
        stats: the finished first-pass statistics.
        weights: classifier rows (K, d) for nc4 (optional).
        bias: classifier bias (K,) (optional).
        center: as in :func:`~nclab.metrics.nc_metrics`.
        allow_missing: as in :func:`~nclab.metrics.nc_metrics`.
        rcond: as in :func:`~nclab.metrics.nc_metrics` (the Sigma_B rank rule of per-class nc1).
    """

    def __init__(
        self,
        stats: FeatureStats,
        weights: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        *,
        center: str = "weighted",
        allow_missing: bool = False,
        rcond: float | None = None,
    ):
        check_classifier(weights, bias, stats.num_classes, stats.dim)
        self.stats = stats
        self.prep: Prepared = prepare(stats, center=center, allow_missing=allow_missing, rcond=rcond)
        p = self.prep
        k = stats.num_classes
        self.num_classes = k
        dev = p.mu_g.device
        self.device = dev
        f64 = dict(dtype=torch.float64, device=dev)
        w = weights.detach().to(**f64) if weights is not None else None
        self.has_w = w is not None
        # decisions on centred features h' = h - mu_G: W h + b = W h' + (W mu_G + b)
        self.offset = None
        if w is not None:
            self.offset = w @ p.mu_g
            if bias is not None:
                self.offset = self.offset + bias.detach().to(**f64)
        mc = p.mt  # (K_p, d) present means, centred: mc = U S V^T, proj = V S^-1
        self.mc_sq = (mc * mc).sum(1)  # (K_p,)
        blocks = [p.proj]
        if self.has_w:
            blocks.append(w.T)
        self.big = torch.cat(blocks, dim=1)  # (d, r [+ K]), float64
        self.r = p.proj.shape[1]
        # NCC scores h'.m_k = (h' proj) (S^2 U^T): the means lie in span(V), so the (N, d) x (d, K_p)
        # product shrinks to (N, r) x (r, K_p) on the projection the first product already gives
        s = 1.0 / p.proj.norm(dim=0)  # singular values of mc (columns of V are unit vectors)
        self.ncc = (s * s).unsqueeze(1) * p.left.T  # (r, K_p)
        self.resid = torch.zeros(k, **f64)
        self.mismatch = torch.zeros((), **f64)  # device scalars: no sync per batch
        self.seen = torch.zeros((), **f64)
        self._cache: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def _cached(self, name: str, value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        key = (name, dtype)
        if key not in self._cache:
            self._cache[key] = value.to(dtype)
        return self._cache[key]

    def _big(self, dtype: torch.dtype) -> torch.Tensor:
        return self._cached("big", self.big, dtype)

    def _mu_g(self, dtype: torch.dtype) -> torch.Tensor:
        return self._cached("mu_g", self.prep.mu_g, dtype)

    def _mcp(self, dtype: torch.dtype) -> torch.Tensor:
        """P^T (mu_k - mu_G) for all K classes (zeros for absent ones), (K, r), computed in float64."""
        mc = torch.nan_to_num(self.prep.means - self.prep.mu_g, nan=0.0)
        return self._cached("mcp", mc @ self.prep.proj, dtype)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor, *, validate: bool = True) -> None:
        """Add a batch (the same data, in any batching, as the first pass).

        ``validate=False`` skips the finiteness and label-range checks (host synchronisations)."""
        if validate:
            check_features(features)
            y = check_labels(labels, features.shape[0], self.num_classes)
        else:
            y = labels.long()
        if features.shape[0] == 0:
            return
        p = self.prep
        y = y.to(self.device)
        x = features.detach().to(self.device)
        dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        x = x.to(dt)
        big = self._big(dt)
        xc = x - self._mu_g(dt)  # h - mu_G, (N, d)
        out = xc @ big  # (N, r [+ K]): one product for the projection and the linear decisions
        proj = out.narrow(1, 0, self.r)  # P^T (h - mu_G)
        # P^T (h - mu_y) = P^T (h - mu_G) - P^T (mu_y - mu_G)
        z = proj - self._mcp(dt).index_select(0, y)
        self.resid.index_add_(0, y, (z * z).sum(1).double())
        if self.has_w:
            lin = out.narrow(1, self.r, out.shape[1] - self.r)
            pred = (lin + self._cached("offset", self.offset, dt)).argmax(1)
            # ||h - mu_k||^2 = ||h'||^2 - 2 h'.m_k + ||m_k||^2; the ||h'||^2 term does not change argmin
            dist = torch.addmm(
                self._cached("mc_sq", self.mc_sq, dt), proj, self._cached("ncc", self.ncc, dt), alpha=-2
            )
            ncc = p.present.index_select(0, dist.argmin(1))
            self.mismatch += (pred != ncc).sum()
        self.seen += y.shape[0]

    def result(self) -> dict[str, Any]:
        """``nc4`` (fraction, None without W) and ``per_class_nc1`` (list, None for classes with < 2).

        One transfer to the host (the accumulators and the counts the class means came from)."""
        host = torch.cat([self.resid, self.prep.counts, self.mismatch.reshape(1), self.seen.reshape(1)])
        vals = host.cpu().tolist()
        k = self.num_classes
        resid, c, mismatch, seen = vals[:k], vals[k : 2 * k], vals[2 * k], vals[2 * k + 1]
        per: list[float | None] = [resid[i] / c[i] if c[i] >= 2 else None for i in range(k)]
        nc4 = (mismatch / seen) if (self.has_w and seen) else None
        return {"nc4": nc4, "per_class_nc1": per}
