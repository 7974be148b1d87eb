"""Sufficient statistics of last-layer features, gathered in one pass and merged by summation.

State (all float64, memory O(K d + d^2)):

- ``counts``   (K,)   samples per class n_k
- ``sums``     (K, d) per-class sums of h
- ``sq_norms`` (K,)   per-class sums of ||h||^2
- ``second``   (d, d) pooled raw second moment sum_i h_i h_i^T

These raw moments are additive, so batches, data loaders and DDP ranks merge by plain summation
(torchmetrics' ``dist_reduce_fx="sum"``). The heavy per-batch product runs in the input dtype on
*batch-centred* data, as in the pairwise update of Chan, Golub and LeVeque (1979/1983): within a batch
each feature is centred on a shift m_k close to its class mean (the running class mean, or for a
class seen for the first time its first sample in the batch, in the input dtype), x_i = h_i - m_{y_i},
r_k = sum_{i in k} x_i, and exactly

    sum_i h_i h_i^T = sum_i x_i x_i^T + sum_k (r_k m_k^T + m_k r_k^T + n_k m_k m_k^T),

where the first term is one (N x d)^T (N x d) product in the input dtype (float32 keeps float32 speed
without catastrophic cancellation: the x_i are of the order of the within-class spread) and the rest
is added in float64. The per-class sums and squared norms are split the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from nclab.errors import DTypeError, ShapeError
from nclab.metrics.validation import check_features, check_labels

_STATES = ("counts", "sums", "sq_norms", "second")


def _check_shapes(features: torch.Tensor, labels: torch.Tensor) -> None:
    """Shape and dtype checks that read only host metadata (no synchronisation)."""
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or not features.is_floating_point():
        raise ShapeError("features must be a floating (N, d) tensor")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise DTypeError("labels must be an integer tensor")
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise ShapeError(
            f"labels must have shape ({features.shape[0]},) to match features, got {tuple(labels.shape)}"
        )


def symmetric_gram(x: torch.Tensor, block: int = 256) -> torch.Tensor:
    """``x^T x`` (d, d) in the dtype of ``x`` (N, d), computing only the upper triangle's blocks.

    BLAS has no symmetric rank-k product in torch; splitting the columns into ``nb`` strips of at
    least ``block`` columns and multiplying strip i by columns i.. only does (nb + 1) / (2 nb) of the
    work of ``x.T @ x`` (0.56 at nb = 8), and each entry is the same dot product. Small d: ``x.T @ x``.
    """
    d = x.shape[1]
    nb = min(8, d // block)
    if nb < 2:
        return x.T @ x
    edges = [round(i * d / nb) for i in range(nb + 1)]
    out = torch.empty(d, d, dtype=x.dtype, device=x.device)
    for lo, hi in zip(edges[:-1], edges[1:]):
        strip = x[:, lo:hi].T @ x[:, lo:]  # (hi - lo, d - lo): rows lo:hi of the upper triangle
        out[lo:hi, lo:] = strip
        out[hi:, lo:hi] = strip[:, hi - lo :].T
    return out


class FeatureStats:
    """One-pass, mergeable per-class feature statistics.

    Args:
        num_classes: K.
        dim: feature dimension d.
        device: where the float64 state lives (default CPU).

    Example:
        >>> import torch
        >>> st = FeatureStats(2, 3)
        >>> st.update(torch.randn(8, 3), torch.tensor([0, 1] * 4))
        >>> st.counts.tolist()
        [4.0, 4.0]
    """

    def __init__(self, num_classes: int, dim: int, *, device: torch.device | str | None = None):
        if num_classes < 1 or dim < 1:
            raise ShapeError(f"num_classes and dim must be >= 1, got {num_classes} and {dim}")
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        kw: dict[str, Any] = {"dtype": torch.float64, "device": device}
        self.counts = torch.zeros(num_classes, **kw)
        self.sums = torch.zeros(num_classes, dim, **kw)
        self.sq_norms = torch.zeros(num_classes, **kw)
        self.second = torch.zeros(dim, dim, **kw)

    # -- accumulation ---------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor, *, validate: bool = True) -> None:
        """Add a batch: ``features`` (N, d) floating, ``labels`` (N,) integers in [0, K).

        With ``validate=False`` only shapes and dtypes are checked (host metadata): no finiteness or
        label-range check, and the update makes no host synchronisation (no ``.item()``, boolean
        indexing or ``.cpu()``), so a training loop can call it every step on a GPU. Labels outside
        [0, K) then raise inside ``index_add_`` (CPU) or a device-side assert (CUDA).
        """
        if validate:
            check_features(features)
            y = check_labels(labels, features.shape[0], self.num_classes)
        else:
            _check_shapes(features, labels)
            y = labels.long()
        if features.shape[1] != self.dim:
            raise ShapeError(f"features have dimension {features.shape[1]}, statistics expect {self.dim}")
        if features.shape[0] == 0:
            return
        dev = self.counts.device
        y = y.to(dev)
        x = features.detach().to(dev)
        k, n = self.num_classes, x.shape[0]
        n_b = torch.zeros(k, dtype=torch.float64, device=dev).index_add_(
            0, y, torch.ones(n, dtype=torch.float64, device=dev)
        )  # (K,) batch counts; index_add_ (unlike CUDA bincount) neither syncs nor breaks determinism
        # shift: the running class mean where the class was seen before, else the class's first sample
        # in this batch (O(K d), no pass over the batch; any shift is exact below, it only has to be
        # close to the class means so that the centred values are small). Masked arithmetic: no sync.
        first = torch.full((k,), n - 1, dtype=torch.long, device=dev).scatter_reduce_(
            0, y, torch.arange(n, device=dev), "amin"
        )
        shift = torch.where((n_b > 0).unsqueeze(1), x.index_select(0, first), x.new_zeros(()))
        seen = (self.counts > 0).unsqueeze(1)
        running = (self.sums / self.counts.clamp_min(1.0).unsqueeze(1)).to(x.dtype)
        shift = torch.where(seen, running, shift)  # (K, d), input dtype
        xc = x - shift.index_select(0, y)  # (N, d), input dtype, of the order of the within-class spread
        r = torch.zeros_like(shift).index_add_(0, y, xc).double()  # (K, d) residual sums
        m = shift.double()  # (K, d)
        # (index_select/unsqueeze rather than [] indexing: the fake-"cuda" tests of a CPU build cannot
        # run Python indexing on device tensors)
        # sum h h^T = xc^T xc + sum_k [r_k m_k^T + m_k r_k^T + n_k m_k m_k^T] = xc^T xc + B + B^T with
        # B = Q^T M, Q = R + N M / 2 (classes absent from the batch have zero rows in R and N), or per
        # sample B = (xc + S/2)^T S with S = M[y]: whichever has fewer rows, min(K, N)
        if k <= n:
            q = r + 0.5 * n_b.unsqueeze(1) * m
            bmat = q.T @ m  # (d, d)
        else:
            s = m.index_select(0, y)
            bmat = (xc.double() + 0.5 * s).T @ s
        self.second += symmetric_gram(xc).double() + bmat + bmat.T
        # sum ||h||^2 = sum ||xc||^2 + 2 r_k . m_k + n_k ||m_k||^2
        self.sq_norms.index_add_(0, y, (xc * xc).sum(1).double())
        self.sq_norms += 2 * (r * m).sum(1) + n_b * (m * m).sum(1)
        self.counts += n_b
        self.sums += r + n_b.unsqueeze(1) * m

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another object's statistics into this one (in place); returns self."""
        if (other.num_classes, other.dim) != (self.num_classes, self.dim):
            raise ShapeError(
                f"cannot merge statistics of shape (K={other.num_classes}, d={other.dim}) into "
                f"(K={self.num_classes}, d={self.dim})"
            )
        for name in _STATES:
            getattr(self, name).add_(getattr(other, name).to(getattr(self, name).device))
        return self

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return int(self.counts.sum().item())

    def means(self) -> torch.Tensor:
        """Class means (K, d); rows of classes without samples are NaN."""
        c = self.counts.unsqueeze(1)
        return torch.where(c > 0, self.sums / c.clamp_min(1.0), float("nan"))

    def class_variances(self) -> torch.Tensor:
        """v_k = mean squared distance of class k to its mean (K,), NaN for empty classes."""
        m = self.means()
        v = self.sq_norms / self.counts - (m * m).sum(1)
        return v.clamp_min(0.0)

    def within_scatter(self) -> torch.Tensor:
        """sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T over all samples (d, d), float64."""
        m = self.sums / self.counts.clamp_min(1.0).unsqueeze(1)  # zero rows for empty classes
        return self.second - (m.T * self.counts) @ m

    def within_scatter_in(self, basis: torch.Tensor) -> torch.Tensor:
        """``basis^T S_W basis`` (r, r) for ``basis`` (d, r), S_W the within-class scatter, float64.

        All that the NC1 traces use (``nc_metrics`` passes P = V S^-1): from the d x d matrix here;
        the two-pass :class:`~nclab.metrics.twopass.SpanStats` returns its r x r block without forming
        a d x d matrix.
        """
        return (basis.T @ self.within_scatter()) @ basis

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "dim": self.dim, **{n: getattr(self, n) for n in _STATES}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["num_classes"], state["dim"]) != (self.num_classes, self.dim):
            raise ShapeError("state_dict was saved for other num_classes/dim")
        for n in _STATES:
            getattr(self, n).copy_(state[n])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FeatureStats:
        out = cls(state["num_classes"], state["dim"], device=state["counts"].device)
        out.load_state_dict(state)
        return out

    def __repr__(self) -> str:
        return f"FeatureStats(num_classes={self.num_classes}, dim={self.dim}, num_samples={self.num_samples})"
