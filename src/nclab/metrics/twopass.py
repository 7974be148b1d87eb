"""Two-pass neural-collapse metrics: one read of X for the class sums, one N x d x (r + K) product.

Notation of docs/metrics.md: centred class means M~ (K_p x d) with thin SVD M~ = U S V^T of rank r
(r <= K - 1 with weighted centring, r <= d), P = V S^-1 (d x r), h' = h - mu_G.

Why reading the data twice replaces the d x d second moment (every metric ``nc_metrics`` reports):

- ``nc1`` = tr(Sigma_W Sigma_B^+)/K (Papyan, Han and Donoho, PNAS 2020): Sigma_B = M~^T M~ / K, so
  Sigma_B^+ = K P P^T and nc1 = tr(P^T Sigma_W P): only the r x r block C = P^T Sigma_W P of Sigma_W
  inside span(M~) enters. Pass 2 accumulates C = sum_i z_i z_i^T with z_i = P^T (h_i - mu_{y_i}).
- ``nc1_weighted_sb`` (Sigma_B weighted by n_k/N, the imbalanced-NC convention): its pseudo-inverse
  lives in the same span, tr(C (U^T D U)^-1); the same C.
- ``per_class.nc1`` = tr(Sigma_k Sigma_B^+)/K = (1/n_k) sum_{i in k} ||z_i||^2.
- ``nc1_cdnv`` (Galanti, Gyorgy and Hutter, ICLR 2022): v_k = (1/n_k) sum_{i in k} ||h_i - mu_k||^2,
  the squared norms of the rows pass 2 centres anyway (an exact two-pass variance, no cancellation),
  and ||mu_k - mu_j||^2 from the means.
- ``nc4`` (Papyan et al. 2020): ||h - mu_k||^2 = ||(I - V V^T) h'||^2 + ||V^T h' - V^T (mu_k - mu_G)||^2;
  the first term is the same for every k (the out-of-span part of every centred mean is zero), so
  the nearest class centre is exact on the r projected coordinates P^T h' = z_i + P^T (mu_{y_i} - mu_G):
  scores z_i S^2 U^T + T[y_i] (one (N, r) x (r, K) product; T holds the class means' own scores).
  The linear decision uses w_k^T h + b_k = w_k^T (h - mu_y) + (w_k^T mu_y + b_k): the W^T columns of
  the same product, plus the class means' logits (a K x K table) per label.
- NC2, NC3, groups, space alignment and SELI are functions of the class means and W (pass 1).

No reported key needs Sigma_W outside span(M~) (with K > d the span is all of R^d and C is all of
Sigma_W); the trace of Sigma_W is sum_k n_k v_k. A metric that needs the full d x d matrix has to take
``path="one_pass"`` (:class:`~nclab.metrics.stats.FeatureStats`), which keeps it.

Cost per sample (multiply-adds): pass 1 reads h once (per-class sums); pass 2 is d (r + K) for the
products with P and W^T, r^2/2 for C and r K for the nearest-centre scores, against d^2/2 for the
one-pass second moment plus the same d (r + K) + r K for its second pass (:class:`SecondPass`).
:func:`choose_path` compares the two per call. On the CPU the r K term is skipped for the rows the
triangle inequality already assigns to their own class mean (``CERTAIN``), and the product's columns
are padded to a multiple of 16 (``PAD``), which MKL multiplies much faster than an odd count.

Both passes keep sums only (float64, one per class or one r x r block), so batches, loaders and DDP
ranks merge by summation; ``distributed=True`` all-reduces each pass's state (one collective per pass).
Per batch nothing is read back to the host: labels out of range and non-finite features are counted
on the device and reported when a pass ends, so CUDA tensors stream without synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from nclab.errors import DTypeError, NclabError, NonFiniteError, ShapeError
from nclab.metrics.functional import CENTERS, Prepared, nc_metrics, prepare
from nclab.metrics.stats import FeatureStats, symmetric_gram
from nclab.metrics.validation import check_classifier

PATHS = ("auto", "two_pass", "one_pass")
Batches = (
    Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]] | Iterable[tuple[torch.Tensor, torch.Tensor]]
)


# -- the path choice ------------------------------------------------------------------------------
def _gram_cost(m: int, block: int = 256) -> float:
    """Multiply-adds per row of ``symmetric_gram(x, block)`` on an (N, m) matrix (its strips skip the
    lower triangle: (nb + 1) / (2 nb) of m^2 with nb = min(8, m // block) strips, m^2 when nb < 2)."""
    nb = min(8, m // block)
    return m * m * ((nb + 1) / (2 * nb) if nb >= 2 else 1.0)


def path_costs(
    dim: int,
    num_classes: int,
    *,
    has_weights: bool = True,
    full: bool = True,
    center: str = "weighted",
    reread_cost: float = 0.0,
) -> dict[str, float]:
    """Estimated multiply-adds per sample of each path (the data passes; the K x d work is left out).

    ``r`` is bounded by min(K - 1, d) (weighted centring) or min(K, d). ``full`` asks for the keys of
    the second read (``nc4``, ``per_class.nc1``); ``reread_cost`` is what reading a sample again costs
    in the same unit (0 for features in memory; a network's forward flops when the loader re-runs it).

    - two_pass: d r (projection) + gram(r) (C) + [d K + r K (logits, nearest centre) if full and W]
      + reread_cost.
    - one_pass: gram(d) (second moment) + [d r + d K + r K + reread_cost if full] (SecondPass).
    """
    d, k = int(dim), int(num_classes)
    r = min(k - 1 if center == "weighted" else k, d)
    wk = d * k + r * k if (has_weights and full) else 0.0
    two = d * r + _gram_cost(r, 64) + wk + reread_cost
    one = _gram_cost(d) + ((d * r + wk + reread_cost) if full else 0.0)
    return {"two_pass": float(two), "one_pass": float(one)}


def choose_path(
    dim: int,
    num_classes: int,
    *,
    has_weights: bool = True,
    full: bool = True,
    center: str = "weighted",
    reread_cost: float = 0.0,
) -> str:
    """``"two_pass"`` when its estimated cost (:func:`path_costs`) is at most the one-pass path's.

    With the full set (``full=True``) over features in memory the two-pass path is never costlier
    (r <= d); the one-pass path wins when only the one-read keys are wanted and r is close to d
    (e.g. K = 1000, d = 2048), or when reading the data again costs a forward pass.
    """
    c = path_costs(
        dim, num_classes, has_weights=has_weights, full=full, center=center, reread_cost=reread_cost
    )
    return "two_pass" if c["two_pass"] <= c["one_pass"] else "one_pass"


# -- per-batch checks that stay on the device -----------------------------------------------------
def _check_batch(features: Any, labels: Any, dim: int) -> None:
    """Shapes and dtypes only (no read of the values: no host synchronisation)."""
    if not isinstance(features, torch.Tensor):
        raise DTypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2:
        raise ShapeError(f"features must have shape (N, d), got {tuple(features.shape)}")
    if not features.is_floating_point():
        raise DTypeError(f"features must be a floating-point tensor, got {features.dtype}")
    if features.shape[1] != dim:
        raise ShapeError(f"features have dimension {features.shape[1]}, statistics expect {dim}")
    if not isinstance(labels, torch.Tensor):
        raise DTypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DTypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise ShapeError(
            f"labels must have shape ({features.shape[0]},) to match features, got {tuple(labels.shape)}"
        )


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _chunk_rows(x: torch.Tensor) -> int:
    """Rows per chunk: 1M values (4 MB of float32) on the CPU, in buffers reused across chunks, so no
    fresh memory is touched per batch and a chunk's centred rows stay in cache between the centring,
    the norms and the product (at (50k, 512, 100) the two-pass path ran in 0.195 s with 1024-2048-row
    chunks against 0.258 s with 8192; no difference at d = 1024, K = 500); the whole batch on a GPU."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    return max(256, min(16384, (1 << 20) // max(1, x.shape[1])))


def _buffer(cache: dict, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """A reusable (rows, cols) work buffer in the dtype/device of ``like`` (kept across batches, so the
    memory is touched once per pass, not once per batch)."""
    key = (name, like.dtype, like.device)
    buf = cache.get(key)
    if buf is None or buf.shape[0] < rows or buf.shape[1] != cols:
        buf = torch.empty(rows, cols, dtype=like.dtype, device=like.device)
        cache[key] = buf
    return buf


PAD = 16
"""The product's column count is rounded up to a multiple of this (zero columns): 64-byte rows in
float32. MKL multiplies an (N, 512) chunk by 199 columns at 30-40 GFLOP/s single-threaded and by 208
at 50-80 (measured in issue 19), so the 9 wasted columns make the product about 1.3x faster."""


CERTAIN = 0.01
"""Relative margin of the nearest-centre certificate of :class:`SpanPass` (CPU): a row within
(1 - CERTAIN) half the distance from its class mean to the nearest other one is decided without scores
(float32 rounding of h - mu_y is far below this margin unless the mean is ~1e5 times the spread)."""


def _pad_columns(mat: torch.Tensor, multiple: int = PAD) -> torch.Tensor:
    """``mat`` (d, c) with zero columns appended up to a multiple of ``multiple``."""
    extra = -mat.shape[1] % multiple
    if extra == 0:
        return mat
    return torch.cat([mat, mat.new_zeros(mat.shape[0], extra)], dim=1)


def _flat_all_reduce(tensors: list[torch.Tensor], group: Any = None) -> None:
    """Sum ``tensors`` (in place) over the processes of ``group`` with one float64 all-reduce."""
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    i = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[i : i + n].view_as(t).to(t.dtype))
        i += n


# -- pass 1 ---------------------------------------------------------------------------------------
class ClassSums:
    """Pass 1: per-class counts and sums (float64), mergeable by summation.

    Inside a batch the features are summed in the input dtype after subtracting one shift vector (the
    first feature seen), which removes a common offset before the float32 accumulation; the shift is
    added back in float64, so the state is the exact raw sum whatever the shift.

    Args:
        num_classes: K.
        dim: d.
        device: where the state lives (default: the device of the first batch).
    """

    def __init__(self, num_classes: int, dim: int, *, device: torch.device | str | None = None):
        if num_classes < 1 or dim < 1:
            raise ShapeError(f"num_classes and dim must be >= 1, got {num_classes} and {dim}")
        self.num_classes, self.dim = int(num_classes), int(dim)
        self._fixed = device is not None
        self._alloc(torch.device(device) if device is not None else torch.device("cpu"))
        self._shift: torch.Tensor | None = None
        self._buffers: dict = {}

    def _alloc(self, device: torch.device) -> None:
        f64 = {"dtype": torch.float64, "device": device}
        self.counts = torch.zeros(self.num_classes, **f64)
        self.sums = torch.zeros(self.num_classes, self.dim, **f64)
        self.bad_labels = torch.zeros((), dtype=torch.float64, device=device)  # labels outside [0, K)

    def states(self) -> list[torch.Tensor]:
        return [self.counts, self.sums, self.bad_labels]

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``features`` (N, d) floating, ``labels`` (N,) integers in [0, K)."""
        _check_batch(features, labels, self.dim)
        n = features.shape[0]
        if n == 0:
            return
        if not self._fixed:  # the state follows the first batch's device
            self._fixed = True
            if features.device != self.counts.device:
                self._alloc(features.device)
        dev = self.counts.device
        x = features.detach().to(dev)
        y = labels.to(dev).long()
        k = self.num_classes
        self.bad_labels += ((y < 0) | (y >= k)).sum()
        y = y.clamp(0, k - 1)
        dt = _compute_dtype(x)
        if self._shift is None:
            self._shift = x.narrow(0, 0, 1).reshape(-1).to(torch.float64).clone()
        shift = self._shift.to(dt)
        rows = _chunk_rows(x)
        acc = torch.zeros(k, self.dim, dtype=dt, device=dev)
        buf = _buffer(self._buffers, "x", min(rows, n), self.dim, acc)
        for lo in range(0, n, rows):
            m = min(rows, n - lo)
            xb = torch.sub(x.narrow(0, lo, m).to(dt), shift, out=buf.narrow(0, 0, m))
            acc.index_add_(0, y.narrow(0, lo, m), xb)
        nb = torch.zeros(k, dtype=torch.float64, device=dev).index_add_(
            0, y, torch.ones(n, dtype=torch.float64, device=dev)
        )
        self.counts += nb
        self.sums += acc.double() + nb.unsqueeze(1) * shift.double()

    def merge(self, other: ClassSums) -> ClassSums:
        """Add another object's sums into this one (in place); returns self."""
        if (other.num_classes, other.dim) != (self.num_classes, self.dim):
            raise ShapeError(
                f"cannot merge sums of shape (K={other.num_classes}, d={other.dim}) into "
                f"(K={self.num_classes}, d={self.dim})"
            )
        for a, b in zip(self.states(), other.states()):
            a.add_(b.to(a.device))
        return self

    def all_reduce(self, group: Any = None) -> None:
        """Sum the state over the processes of ``group`` (every rank must call it)."""
        _flat_all_reduce(self.states(), group)

    def check(self, on_nonfinite: Callable[[], Any] | None = None) -> None:
        """Raise for the labels out of range and non-finite features seen (one host synchronisation).

        ``on_nonfinite`` may raise a more precise error (e.g. ``check_features`` on in-memory data).
        """
        bad = int(self.bad_labels)
        if bad:
            raise ShapeError(
                f"{bad} label(s) lie outside [0, {self.num_classes}): check num_classes or the label encoding"
            )
        if not bool(torch.isfinite(self.sums).all()):
            if on_nonfinite is not None:
                on_nonfinite()
            raise NonFiniteError("features contain NaN or Inf (or overflow when summed): check the inputs")


# -- what nc_metrics consumes ---------------------------------------------------------------------
class SpanStats(FeatureStats):
    """The statistics :func:`~nclab.metrics.nc_metrics` consumes, gathered in two passes.

    ``counts`` and ``sums`` come from pass 1; the per-class squared deviations sum_{i in k}
    ||h_i - mu_k||^2 and Sigma_W inside span(M~) (``within_span``, r x r in the basis V S) from pass
    2. :meth:`within_scatter_in` (what ``nc_metrics`` calls) returns B^T S_W B for a basis B inside the
    span from the r x r block (the block itself for pass 2's P), never a d x d matrix;
    :meth:`within_scatter` returns the d x d matrix V S C S V^T, which equals the within-class
    scatter on span(M~) and is zero outside it: every quantity P^T S_W P with P in the span is exact. The full d x d second moment is not kept (``second`` raises); use
    :class:`FeatureStats` (``path="one_pass"``) for a metric that needs it.
    """

    def __init__(self, counts: torch.Tensor, sums: torch.Tensor):
        self.num_classes, self.dim = int(sums.shape[0]), int(sums.shape[1])
        self.counts = counts
        self.sums = sums
        self.sq_dev = torch.zeros_like(counts)
        self.within_span: torch.Tensor | None = None  # (r, r): P^T S_W P
        self.span: torch.Tensor | None = None  # (d, r): V S, so that P = V S^-1 and B C B^T works
        self.proj: torch.Tensor | None = None  # (d, r): pass 2's P = V S^-1 (within_span = P^T S_W P)

    @property
    def second(self) -> torch.Tensor:  # type: ignore[override]
        raise NclabError(
            "the two-pass statistics keep Sigma_W only inside span(M~) (all that the reported metrics "
            "use); pass path='one_pass' (FeatureStats) for the full d x d second moment"
        )

    @property
    def sq_norms(self) -> torch.Tensor:  # type: ignore[override]
        """sum_{i in k} ||h_i||^2 rebuilt from the deviations (class_variances uses the exact ones)."""
        m = torch.nan_to_num(self.means(), nan=0.0)
        return self.sq_dev + self.counts * (m * m).sum(1)

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        raise NclabError("SpanStats is filled by ClassSums and SpanPass; use FeatureStats to stream one pass")

    def merge(self, other: FeatureStats) -> FeatureStats:
        raise NclabError("merge the pass states (ClassSums.merge, SpanPass.merge), not SpanStats")

    def class_variances(self) -> torch.Tensor:
        """v_k = (1/n_k) sum_{i in k} ||h_i - mu_k||^2 from the centred rows of pass 2 (NaN if empty)."""
        return torch.where(self.counts > 0, self.sq_dev / self.counts.clamp_min(1.0), torch.nan)

    def within_scatter(self) -> torch.Tensor:
        """The within-class scatter compressed to span(M~) (d x d, rank r; see the class docstring)."""
        if self.within_span is None or self.span is None:
            raise NclabError("pass 2 has not finished: call SpanPass.finish() first")
        b = self.span
        return (b @ self.within_span) @ b.T

    def within_scatter_in(self, basis: torch.Tensor) -> torch.Tensor:
        """``basis^T S_W basis`` (r', r') from the r x r block, no d x d matrix: the block itself when
        ``basis`` is pass 2's P (``nc_metrics`` reusing its preparation), else G C G^T with
        G = basis^T V S (d r r' multiply-adds); exact for a basis inside span(M~)."""
        if self.within_span is None or self.span is None:
            raise NclabError("pass 2 has not finished: call SpanPass.finish() first")
        if basis is self.proj:
            return self.within_span
        g = basis.T @ self.span  # (r', r)
        return (g @ self.within_span) @ g.T


# -- pass 2 ---------------------------------------------------------------------------------------
class SpanPass:
    """Pass 2: Sigma_W inside span(M~), per-class residuals and deviations, nc4; sums only.

    Per batch, in row chunks and reused buffers (input dtype): centre each row on its class mean,
    one product (h - mu_y) [P | W^T] giving z = P^T (h - mu_y) and the centred logits; accumulate
    C += z^T z, ||z||^2 and ||h - mu_y||^2 per class; with W, the logits plus the class means' logits
    (per label) against the nearest-centre scores z S^2 U^T + T[y] (module docstring), counting
    disagreements on the device. On the CPU a row with ||h - mu_y|| < (1 - CERTAIN) d_y / 2 (d_y: the
    distance from mu_y to the nearest other class mean) is nearest to mu_y by the triangle inequality,
    and only the other rows get scores (one host read of a mask per chunk; none on a GPU).

    Args:
        first: the finished pass-1 sums (after :meth:`ClassSums.all_reduce` under DDP).
        weights, bias: classifier (K, d) and (K,), optional (``nc4`` needs them).
        center, allow_missing, rcond: as in :func:`~nclab.metrics.nc_metrics`.
        decisions: compute ``nc4`` (the logits product) when W is given (default True).
    """

    def __init__(
        self,
        first: ClassSums,
        weights: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        *,
        center: str = "weighted",
        allow_missing: bool = False,
        rcond: float | None = None,
        decisions: bool = True,
    ):
        k, d = first.num_classes, first.dim
        check_classifier(weights, bias, k, d)
        self.num_classes, self.dim = k, d
        self.stats = SpanStats(first.counts.detach().cpu().clone(), first.sums.detach().cpu().clone())
        self.prep: Prepared = prepare(self.stats, center=center, allow_missing=allow_missing, rcond=rcond)
        p = self.prep
        self.r = int(p.proj.shape[1])
        self.device = first.counts.device
        self.has_w = weights is not None and decisions
        self._all_present = len(p.present) == k
        means = torch.nan_to_num(p.means, nan=0.0)
        s = 1.0 / p.proj.norm(dim=0)  # singular values of M~ (the columns of V are unit vectors)
        consts: dict[str, torch.Tensor] = {"means": means, "proj": p.proj}
        if self.has_w:
            assert weights is not None
            w = weights.detach().to("cpu", torch.float64)
            b64 = (
                bias.detach().to("cpu", torch.float64)
                if bias is not None
                else torch.zeros(k, dtype=torch.float64)
            )
            consts["big"] = torch.cat([p.proj, w.T], dim=1)  # (d, r + K): [P | W^T]
            # w_j^T h + b_j = w_j^T (h - mu_y) + (w_j^T mu_y + b_j): the class means' logits, (K, K)
            consts["lin0"] = means @ w.T + b64
            # nearest centre on P^T h' = z + P^T (mu_y - mu_G): h'.m_j - ||m_j||^2/2 = z (S^2 U^T)_j + T[y, j]
            ncc = (s * s).unsqueeze(1) * p.left.T  # (r, K_p)
            consts["ncc"] = ncc
            # the class means' own scores: P^T (mu_k - mu_G) = U_k (M~ = U S V^T), so T = U S^2 U^T - |m_j|^2/2
            # on the present rows (absent classes have no samples; their rows stay 0), (K, K_p)
            own = (p.left * (s * s)) @ p.left.T - 0.5 * (p.mt * p.mt).sum(1)
            consts["near0"] = torch.zeros(k, own.shape[1], dtype=torch.float64).index_copy_(0, p.present, own)
            # a row with ||h - mu_y|| < (1 - CERTAIN) d_y / 2, d_y the distance from mu_y to the nearest
            # other mean, is nearest to mu_y (triangle inequality, margin 2 CERTAIN): its scores are not
            # needed. Squared radii per class (0 for absent classes)
            gm = p.mt @ p.mt.T
            gd = gm.diagonal()
            dist2 = (gd.unsqueeze(1) + gd.unsqueeze(0) - 2 * gm).clamp_min(0.0)
            dist2.fill_diagonal_(float("inf"))
            rad2 = 0.25 * (1.0 - CERTAIN) ** 2 * dist2.min(1).values
            consts["rad2"] = torch.zeros(k, dtype=torch.float64).index_copy_(0, p.present, rad2).unsqueeze(1)
        else:
            consts["big"] = p.proj
        consts["big"] = _pad_columns(consts["big"])
        self._consts64 = consts
        self._cache: dict[tuple[torch.dtype, torch.device], dict[str, torch.Tensor]] = {}
        self._buffers: dict = {}
        self._present = p.present.to(self.device)
        self._s = s
        f64 = {"dtype": torch.float64, "device": self.device}
        self.cov = torch.zeros(self.r, self.r, **f64)  # C = P^T S_W P
        self.resid = torch.zeros(k, **f64)  # sum_{i in k} ||z_i||^2
        self.sq_dev = torch.zeros(k, **f64)  # sum_{i in k} ||h_i - mu_k||^2
        self.counts = torch.zeros(k, **f64)  # the labels of the second read (must equal pass 1's)
        self.mismatch = torch.zeros((), **f64)
        self.bad_labels = torch.zeros((), **f64)

    def states(self) -> list[torch.Tensor]:
        return [self.cov, self.resid, self.sq_dev, self.counts, self.mismatch, self.bad_labels]

    def _c(self, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = {n: v.to(device=device, dtype=dtype) for n, v in self._consts64.items()}
        return self._cache[key]

    def _nearest(self, c: dict[str, torch.Tensor], z: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """The nearest class centre (class index) of rows with projections ``z`` and labels ``yb``."""
        scores = c["near0"].index_select(0, yb).addmm_(z, c["ncc"])
        near = scores.argmax(1)
        return near if self._all_present else self._present.index_select(0, near)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch of the same data as pass 1 (any batching and order)."""
        _check_batch(features, labels, self.dim)
        n = features.shape[0]
        if n == 0:
            return
        dev = self.device
        x = features.detach().to(dev)
        y = labels.to(dev).long()
        k, r = self.num_classes, self.r
        self.bad_labels += ((y < 0) | (y >= k)).sum()
        y = y.clamp(0, k - 1)
        dt = _compute_dtype(x)
        c = self._c(dt, dev)
        rows = _chunk_rows(x)
        mm = min(rows, n)
        big = c["big"]
        xbuf = _buffer(self._buffers, "x", mm, self.dim, big)
        obuf = _buffer(self._buffers, "out", mm, big.shape[1], big)
        cov = torch.zeros(r, r, dtype=dt, device=dev)
        sym = r >= 128  # C from upper-triangle strips of >= 64 columns: about r^2/2 (symmetric_gram)
        if self.has_w:
            lbuf = _buffer(self._buffers, "logits", mm, k, big)
            sbuf = _buffer(self._buffers, "scores", mm, len(self._present), big)
            mism = torch.zeros((), dtype=torch.long, device=dev)
            certify = dev.type == "cpu"
        for lo in range(0, n, rows):
            m = min(rows, n - lo)
            yb = y.narrow(0, lo, m)
            xc = torch.index_select(c["means"], 0, yb, out=xbuf.narrow(0, 0, m))
            torch.sub(x.narrow(0, lo, m).to(dt), xc, out=xc)  # h - mu_y: of the order of the within spread
            sq = torch.linalg.vector_norm(xc, dim=1, keepdim=True).square_()  # (m, 1), no (m, d) temporary
            self.sq_dev.index_add_(0, yb, sq.view(-1).double())
            out = torch.mm(xc, big, out=obuf.narrow(0, 0, m))  # the one product: (h - mu_y) [P | W^T]
            z = out.narrow(1, 0, r)  # P^T (h - mu_y)
            self.resid.index_add_(0, yb, torch.linalg.vector_norm(z, dim=1).double().square_())
            if sym:
                cov += symmetric_gram(z, block=64)
            else:
                cov.addmm_(z.T, z)
            if self.has_w:
                logits = torch.index_select(c["lin0"], 0, yb, out=lbuf.narrow(0, 0, m)).add_(
                    out.narrow(1, r, k)
                )
                if certify:  # CPU: scores only for the rows the triangle inequality leaves open
                    near = yb.clone()
                    open_rows = (sq.view(-1) >= c["rad2"].view(-1).index_select(0, yb)).nonzero().view(-1)
                    if open_rows.numel():
                        nearest = self._nearest(
                            c, z.index_select(0, open_rows), yb.index_select(0, open_rows)
                        )
                        near.index_copy_(0, open_rows, nearest)
                else:  # no host synchronisation: every row's scores
                    scores = torch.index_select(c["near0"], 0, yb, out=sbuf.narrow(0, 0, m)).addmm_(
                        z, c["ncc"]
                    )
                    near = scores.argmax(1)
                    if not self._all_present:
                        near = self._present.index_select(0, near)
                mism += (logits.argmax(1) != near).sum()
        if self.has_w:
            self.mismatch += mism
        self.cov += cov.double()
        self.counts.index_add_(0, y, torch.ones(n, dtype=torch.float64, device=dev))

    def merge(self, other: SpanPass) -> SpanPass:
        """Add another object's pass-2 sums (made from the same pass-1 sums) into this one."""
        if other.r != self.r or other.num_classes != self.num_classes:
            raise ShapeError("cannot merge second passes built on different class means")
        for a, b in zip(self.states(), other.states()):
            a.add_(b.to(a.device))
        return self

    def all_reduce(self, group: Any = None) -> None:
        """Sum the state over the processes of ``group`` (every rank must call it)."""
        _flat_all_reduce(self.states(), group)

    def finish(self) -> SpanStats:
        """Check the second read and fill :attr:`stats` (one host synchronisation); returns it."""
        bad = int(self.bad_labels)
        if bad:
            raise ShapeError(f"{bad} label(s) of the second read lie outside [0, {self.num_classes})")
        if not torch.equal(self.counts.cpu(), self.stats.counts):
            raise NclabError(
                "the second read of the batches gave other labels than the first (class counts differ): "
                "the batches must yield the same samples both times (no random subset, no drop_last with "
                "shuffling)"
            )
        st = self.stats
        st.sq_dev = self.sq_dev.cpu()
        st.within_span = self.cov.cpu()
        st.span = self.prep.basis * self._s  # V S
        st.proj = self.prep.proj
        if not bool(torch.isfinite(st.within_span).all()):
            raise NonFiniteError("features of the second read contain NaN or Inf")
        return st

    def result(self) -> dict[str, Any]:
        """``nc4`` (None without W) and ``per_class_nc1`` (None for classes with < 2 samples), as
        :meth:`SecondPass.result <nclab.metrics.SecondPass.result>`."""
        c = self.stats.counts
        resid = self.resid.cpu()
        per: list[float | None] = [
            float(resid[i] / c[i]) if c[i] >= 2 else None for i in range(self.num_classes)
        ]
        seen = float(c.sum())
        nc4 = float(self.mismatch) / seen if (self.has_w and seen) else None
        return {"nc4": nc4, "per_class_nc1": per}


# -- drivers --------------------------------------------------------------------------------------
def _reader(batches: Batches) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A callable giving a fresh iterator each time, from a factory or a re-iterable (list, DataLoader)."""
    if callable(batches) and not hasattr(batches, "__iter__"):
        return lambda: iter(batches())  # type: ignore[operator]
    if iter(batches) is batches:  # type: ignore[arg-type]
        raise NclabError(
            "batches is a one-shot iterator and cannot be read twice: pass a callable returning a fresh "
            "iterator, a list, or a DataLoader (or stream one pass into FeatureStats)"
        )
    return lambda: iter(batches)  # type: ignore[arg-type]


def _num_classes(weights: Any, counts: Any, num_classes: int | None) -> int:
    if num_classes is not None:
        return int(num_classes)
    if weights is not None:
        return int(weights.shape[0])
    if counts is not None:
        return len(counts)
    raise NclabError("pass num_classes (or weights, or counts) to measure batches")


def measure_batches(
    batches: Batches,
    weights: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    num_classes: int | None = None,
    dim: int | None = None,
    center: str = "weighted",
    counts: Any = None,
    allow_missing: bool = False,
    many: int = 100,
    few: int = 20,
    rcond: float | None = None,
    stable_rcond: float | None = None,
    path: str = "auto",
    full: bool = True,
    reread_cost: float = 0.0,
    distributed: bool = False,
    group: Any = None,
    device: torch.device | str | None = None,
    on_nonfinite: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Neural-collapse metrics of (features, labels) batches, read once or twice; ``result["path"]``.

    Args:
        batches: a callable returning a fresh iterable of ``(features (n, d), labels (n,))`` batches,
            or a re-iterable (list, DataLoader). Both reads must yield the same samples (any order).
        weights, bias: classifier (K, d) and (K,), optional.
        num_classes: K (default ``weights.shape[0]``, else ``len(counts)``).
        dim: d (default ``weights.shape[1]``, else the first batch's).
        center, counts, allow_missing, many, few, rcond: as in :func:`~nclab.metrics.nc_metrics`.
        stable_rcond: as in :func:`~nclab.metrics.nc_metrics` (None: its default).
        path: ``"two_pass"`` (class sums, then one product with [P | W^T]), ``"one_pass"``
            (:class:`FeatureStats`, plus :class:`SecondPass` when ``full``) or ``"auto"``
            (:func:`choose_path` on the shapes).
        full: also the second-read keys ``nc4`` and ``per_class.nc1`` (the two-pass path always has
            ``per_class.nc1``; ``full=False`` skips its logits product and the one-pass second read).
        reread_cost: multiply-adds per sample of reading a batch again (for ``path="auto"``).
        distributed: every rank passes its shard; each pass's sums are all-reduced over ``group``
            (torch.distributed), so every rank returns the single-process result.
        device: where the pass states live (default: the first batch's device).
        on_nonfinite: called (and may raise a precise error) when non-finite features are detected.

    Returns:
        The dict of :func:`~nclab.metrics.nc_metrics` plus ``path`` (``"two_pass"`` or ``"one_pass"``).
    """
    if center not in CENTERS:
        raise NclabError(f"center must be 'weighted' or 'balanced', got {center!r}")
    if path not in PATHS:
        raise NclabError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    k = _num_classes(weights, counts, num_classes)
    opts: dict[str, Any] = dict(
        center=center, counts=counts, allow_missing=allow_missing, many=many, few=few, rcond=rcond
    )
    if stable_rcond is not None:
        opts["stable_rcond"] = stable_rcond
    read = _reader(batches)
    if weights is not None and dim is None:
        dim = int(weights.shape[1])
    it = read()
    first_batch = next(it, None)
    if dim is None:
        if first_batch is None:
            raise NclabError("no batches and no dim: cannot size the statistics")
        dim = int(first_batch[0].shape[1]) if first_batch[0].ndim == 2 else -1
        if dim < 1:
            _check_batch(first_batch[0], first_batch[1], 1)
    if path == "auto":
        path = choose_path(
            dim, k, has_weights=weights is not None, full=full, center=center, reread_cost=reread_cost
        )

    def _pass1(sink: Any) -> None:
        if first_batch is not None:
            sink.update(*first_batch)
        for xb, yb in it:
            sink.update(xb, yb)

    if path == "one_pass":
        from nclab.metrics.second_pass import SecondPass

        stats = FeatureStats(k, dim, device=device)
        _pass1(stats)
        if distributed:
            _flat_all_reduce([stats.counts, stats.sums, stats.sq_norms, stats.second], group)
        second = None
        if full:
            if distributed:
                raise NclabError(
                    "path='one_pass' with full=True is not reducible across ranks: use 'two_pass'"
                )
            second = SecondPass(stats, weights, bias, center=center, allow_missing=allow_missing, rcond=rcond)
            for xb, yb in read():
                second.update(xb, yb)
        out = nc_metrics(stats, weights, bias, second=second, **opts)
        out["path"] = "one_pass"
        return out

    first = ClassSums(k, dim, device=device)
    _pass1(first)
    if distributed:
        first.all_reduce(group)
    first.check(on_nonfinite)
    sp = SpanPass(
        first, weights, bias, center=center, allow_missing=allow_missing, rcond=rcond, decisions=full
    )
    for xb, yb in read():
        sp.update(xb, yb)
    if distributed:
        sp.all_reduce(group)
    stats = sp.finish()
    out = nc_metrics(stats, weights, bias, second=sp, **opts)
    out["path"] = "two_pass"
    return out
