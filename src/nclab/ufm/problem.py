"""The unconstrained-features model (UFM) as a problem you can solve.

Zhu et al. (NeurIPS 2021), papers.md section 2: features H (N x d, one row per sample) are free
variables optimised with the classifier W (K x d) and bias b,

    f(W, H, b) = (1/N) sum_i loss(W h_i + b, y_i) + (lambda_W/2)||W||_F^2 + (lambda_H/2)||H||_F^2
                 + (lambda_b/2)||b||^2,

with n_k features of class k (``counts``), loss CE or MSE ((1/2)||W h + b - e_y||^2).
``normalized=True`` is the sphere model of Yaras et al. (NeurIPS 2022), papers.md section 4: rows of W
and H on the unit sphere, loss (1/N) sum_i CE(tau W h_i, y_i), no weight decay and no bias, optimised
by Riemannian steps (gradient projected on the tangent space, retraction by renormalising).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from nclab.data.profiles import given
from nclab.errors import NclabError

LOSSES = ("ce", "mse")
OPTIMIZERS = ("gd", "sgd", "adam")


@dataclass
class UFMResult:
    """Solution of :meth:`UFM.fit`."""

    W: torch.Tensor  # (K, d)
    H: torch.Tensor  # (N, d)
    b: torch.Tensor  # (K,) (zeros without bias)
    labels: torch.Tensor  # (N,)
    objective: float
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def class_means(self) -> torch.Tensor:
        """Mean feature of each class (K, d)."""
        k = self.W.shape[0]
        return torch.stack([self.H[self.labels == c].mean(0) for c in range(k)])

    def class_logits(self) -> torch.Tensor:
        """Z (K x K): column k holds the logits W mu_k of class k's mean feature."""
        return self.W @ self.class_means().T


class UFM:
    """Unconstrained-features model with given class counts.

    Args:
        counts: n_k per class (positive integers).
        dim: feature dimension d.
        loss: ``"ce"`` or ``"mse"``.
        lambda_w, lambda_h, lambda_b: weight decays (>= 0) in the (lambda/2)||.||^2 convention.
        bias: learn a bias b.
        normalized: the sphere model (no weight decay, no bias, logits scaled by ``tau``).
        tau: temperature of the normalised model (> 0).

    Example:
        >>> ufm = UFM([3, 3], dim=2, lambda_w=1e-2, lambda_h=1e-2)
        >>> res = ufm.fit(steps=200, lr=0.5)
        >>> res.W.shape, res.H.shape
        (torch.Size([2, 2]), torch.Size([6, 2]))
    """

    def __init__(
        self,
        counts: Sequence[int],
        dim: int,
        *,
        loss: str = "ce",
        lambda_w: float = 5e-3,
        lambda_h: float = 5e-3,
        lambda_b: float = 0.0,
        bias: bool = True,
        normalized: bool = False,
        tau: float = 1.0,
    ):
        self.counts = given(counts)
        if len(self.counts) < 2:
            raise NclabError("a UFM needs at least 2 classes")
        if dim < 1:
            raise NclabError(f"dim must be >= 1, got {dim}")
        if loss not in LOSSES:
            raise NclabError(f"loss must be one of {LOSSES}, got {loss!r}")
        for name, v in (("lambda_w", lambda_w), ("lambda_h", lambda_h), ("lambda_b", lambda_b)):
            if not (v >= 0 and math.isfinite(v)):
                raise NclabError(f"{name} must be a finite number >= 0, got {v!r}")
        if not tau > 0:
            raise NclabError(f"tau must be > 0, got {tau!r}")
        if normalized and loss != "ce":
            raise NclabError("the normalised UFM uses the CE loss")
        self.dim, self.loss = int(dim), loss
        self.lambda_w, self.lambda_h, self.lambda_b = float(lambda_w), float(lambda_h), float(lambda_b)
        self.bias = bool(bias) and not normalized
        self.normalized, self.tau = bool(normalized), float(tau)
        self.labels = torch.repeat_interleave(torch.arange(len(self.counts)), torch.tensor(self.counts))

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    @property
    def num_samples(self) -> int:
        return int(sum(self.counts))

    def objective(self, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        """f(W, H, b) as defined in the module docstring (a scalar tensor, differentiable)."""
        y = self.labels.to(W.device)
        if self.normalized:
            logits = self.tau * H @ W.T
            return F.cross_entropy(logits, y)
        logits = H @ W.T
        if self.bias and b is not None:
            logits = logits + b
        if self.loss == "ce":
            data = F.cross_entropy(logits, y)
        else:
            target = F.one_hot(y, self.num_classes).to(logits.dtype)
            data = 0.5 * ((logits - target) ** 2).sum(1).mean()
        reg = 0.5 * self.lambda_w * (W**2).sum() + 0.5 * self.lambda_h * (H**2).sum()
        if self.bias and b is not None:
            reg = reg + 0.5 * self.lambda_b * (b**2).sum()
        return data + reg

    def init(self, seed: int = 0, scale: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random Gaussian initialisation (float64) from a seeded generator."""
        g = torch.Generator().manual_seed(seed)
        k, n, d = self.num_classes, self.num_samples, self.dim
        W = scale * torch.randn(k, d, generator=g, dtype=torch.float64)
        H = scale * torch.randn(n, d, generator=g, dtype=torch.float64)
        if self.normalized:
            W, H = F.normalize(W, dim=1), F.normalize(H, dim=1)
        return W, H, torch.zeros(k, dtype=torch.float64)

    def fit(
        self,
        steps: int,
        lr: float,
        *,
        optimizer: str = "gd",
        seed: int = 0,
        record_every: int = 0,
        init_scale: float = 0.1,
        batch_size: int | None = None,
        tol: float = 0.0,
        callback: Any = None,
    ) -> UFMResult:
        """Minimise the objective from a seeded random start.

        Args:
            steps: iterations.
            lr: step size.
            optimizer: ``"gd"`` (full-batch gradient descent; Riemannian for the normalised model),
                ``"sgd"`` (mini-batches of features with momentum 0.9) or ``"adam"`` (full batch).
            seed: initialisation (and mini-batch) seed.
            record_every: append objective and NC metrics (``nclab.metrics.measure``) to the
                history every this many steps (0: only at the end).
            init_scale: standard deviation of the initialisation.
            batch_size: mini-batch size for ``"sgd"`` (default N/10).
            tol: stop early when the relative objective change over 100 steps is below ``tol``.
            callback: ``callback(step, W, H, b)`` called after every step; it may edit the tensors
                in place (used by the space-alignment experiments).

        Returns:
            :class:`UFMResult`. GD on the problems of the test suite (K <= 10, N <= 200, d >= K)
            reaches the global minimum to 1e-6 relative within 20,000 steps at lr 0.5-1.
        """
        if optimizer not in OPTIMIZERS:
            raise NclabError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if steps < 0 or not lr > 0:
            raise NclabError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
        W, H, b = self.init(seed, init_scale)
        params = [W.requires_grad_(True), H.requires_grad_(True)]
        if self.bias:
            params.append(b.requires_grad_(True))
        opt: torch.optim.Optimizer | None = None
        if optimizer == "adam":
            opt = torch.optim.Adam(params, lr=lr)
        elif optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
        n = self.num_samples
        bs = batch_size or max(1, n // 10)
        g = torch.Generator().manual_seed(seed + 1)
        history: list[dict[str, Any]] = []
        last_check = None
        step = 0
        for step in range(1, steps + 1):
            if optimizer == "sgd":
                idx = torch.randperm(n, generator=g)[:bs]
                grads = torch.autograd.grad(self._minibatch_objective(W, H, b, idx), params)
            elif self.loss == "ce" and not self.normalized:
                if opt is None:  # plain GD: fused in-place step with the closed-form gradients
                    self._ce_gd_step(W, H, b, lr)
                    if callback is not None:
                        callback(step, W, H, b)
                    if record_every and step % record_every == 0:
                        history.append(self._record(step, W, H, b))
                    if tol and step % 100 == 0:
                        val = float(self.objective(W, H, b))
                        if last_check is not None and abs(last_check - val) <= tol * abs(val):
                            break
                        last_check = val
                    continue
                grads = self._ce_gradients(W, H, b)  # closed-form gradients: no autograd overhead
            else:
                grads = torch.autograd.grad(self.objective(W, H, b), params)
            with torch.no_grad():
                if opt is None:
                    for p, gr in zip(params, grads):
                        if self.normalized:
                            gr = gr - (gr * p).sum(1, keepdim=True) * p  # tangent projection
                        p -= lr * gr
                    if self.normalized:
                        W.copy_(F.normalize(W, dim=1))
                        H.copy_(F.normalize(H, dim=1))
                else:
                    for p, gr in zip(params, grads):
                        p.grad = gr
                    opt.step()
                if callback is not None:
                    callback(step, W, H, b)
            if record_every and step % record_every == 0:
                history.append(self._record(step, W, H, b))
            if tol and step % 100 == 0:
                val = float(self.objective(W, H, b))
                if last_check is not None and abs(last_check - val) <= tol * abs(val):
                    break
                last_check = val
        with torch.no_grad():
            obj = float(self.objective(W, H, b))
        res = UFMResult(W.detach(), H.detach(), b.detach(), self.labels.clone(), obj, step, history)
        if not history or history[-1]["step"] != step:
            history.append(self._record(step, res.W, res.H, res.b))
        return res

    @torch.no_grad()
    def _ce_gradients(self, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        """Gradients of the CE objective: with G = (softmax(H W^T + b) - Y)/N,
        dW = G^T H + lambda_W W, dH = G W + lambda_H H, db = sum_i G_i + lambda_b b (tested against autograd)."""
        logits = H @ W.T  # (N, K)
        if self.bias:
            logits += b
        g = torch.softmax(logits, 1)
        g[torch.arange(len(self.labels)), self.labels] -= 1.0
        g /= len(self.labels)
        out = [g.T @ H + self.lambda_w * W, g @ W + self.lambda_h * H]
        if self.bias:
            out.append(g.sum(0) + self.lambda_b * b)
        return out

    @torch.no_grad()
    def _ce_gd_step(self, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor, lr: float) -> None:
        """One GD step with the gradients of :meth:`_ce_gradients`, fused into in-place updates
        (W <- (1 - lr lambda_W) W - lr G^T H and H <- (1 - lr lambda_H) H - lr G W, both from the old
        values)."""
        logits = H @ W.T
        if self.bias:
            logits += b
        g = torch.softmax(logits, 1)
        g[torch.arange(len(self.labels)), self.labels] -= 1.0
        g /= len(self.labels)
        w_new = torch.addmm(W, g.T, H, beta=1 - lr * self.lambda_w, alpha=-lr)  # (K, d), old H
        H.addmm_(g, W, beta=1 - lr * self.lambda_h, alpha=-lr)  # old W
        W.copy_(w_new)
        if self.bias:
            b.mul_(1 - lr * self.lambda_b).add_(g.sum(0), alpha=-lr)

    def _minibatch_objective(self, W, H, b, idx):
        sub = UFM.__new__(UFM)
        sub.__dict__.update(self.__dict__)
        sub.labels = self.labels[idx]
        full_reg_scale = len(idx) / self.num_samples
        # unbiased estimate of the full objective: data term on the batch, H penalty on the batch rows
        # rescaled so that its expectation equals the full penalty
        sub_lambda_h = self.lambda_h / full_reg_scale
        sub.lambda_h = sub_lambda_h
        return sub.objective(W, H[idx], b)

    def _record(self, step, W, H, b) -> dict[str, Any]:
        import warnings

        from nclab.errors import NclabError as _E
        from nclab.metrics import measure

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singleton classes are expected in tiny UFMs
            rec: dict[str, Any] = {"step": step, "objective": float(self.objective(W, H, b))}
            try:
                m = measure(H.detach(), self.labels, W.detach(), b.detach() if self.bias else None)
                for key in ("nc1", "nc2_equinorm", "nc2_etf", "nc3", "nc4"):
                    rec[key] = m[key]
                rec["minority_collapse"] = m["groups"]["few"]["w_cos"]
            except _E:  # degenerate early iterates (all means equal): no NC metrics yet
                pass
        return rec
