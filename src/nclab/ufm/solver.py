"""Solve one UFM with either solver and get the numbers a reader compares with the theory.

``solve`` picks the solver and enforces its rules: ``"gd"`` runs :meth:`nclab.ufm.UFM.fit` (gradient
descent on W, H and b; Zhu et al., NeurIPS 2021, papers.md section 2) for either loss and any dimension;
``"convex"`` solves Hong and Ling's class-level program (papers.md section 5) with
:func:`nclab.ufm.solve_convex` at lam = sqrt(lambda_W lambda_H) (:func:`nclab.ufm.ufm_to_convex_lambda`)
and factors Z back into W and the class features (:func:`nclab.ufm.summary.factorize`). The program
holds for the CE loss only, and its nuclear-norm form needs d >= K (the balanced factors of Z have K
columns).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nclab.errors import ConfigError
from nclab.ufm.convex import solve_convex, ufm_to_convex_lambda
from nclab.ufm.problem import UFM
from nclab.ufm.summary import factorize, summarize

SOLVERS = ("gd", "convex")
#: the NC metrics of :func:`nclab.metrics.measure` that a solution reports
NC_KEYS = ("nc1", "nc2_equinorm", "nc2_equiangle", "nc2_etf", "nc3", "nc4")


@dataclass
class Solution:
    """What :func:`solve` returns: the minimiser and how it was reached."""

    counts: list[int]
    dim: int
    loss: str
    solver: str
    W: torch.Tensor  # (K, d)
    H: torch.Tensor  # (N, d): one row per sample
    b: torch.Tensor  # (K,)
    class_means: torch.Tensor  # (K, d)
    labels: torch.Tensor  # (N,)
    objective: float
    #: the solver's own report: ``steps`` (gd), or ``kkt`` and ``iterations`` (convex)
    info: dict[str, Any] = field(default_factory=dict)

    def nc(self) -> dict[str, float]:
        """NC1-NC4 of the solution (:func:`nclab.metrics.measure`, float64), keys :data:`NC_KEYS`."""
        from nclab.metrics import measure

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny problems: singleton classes, exact collapse
            m = measure(self.H.double(), self.labels, self.W.double(), self.b.double(), counts=self.counts)
        return {key: m[key] for key in NC_KEYS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts, dim, solver, objective, the solver's ``info``, ``nc``, per-count
        ``groups`` and ``seli`` (:func:`nclab.ufm.summary.summarize`) and the class-level logits ``Z``
        (K x K, column k = W mu_k)."""
        return {
            "counts": self.counts,
            "dim": self.dim,
            "solver": self.solver,
            "objective": self.objective,
            **self.info,
            "nc": self.nc(),
            **summarize(self.W, self.class_means, self.counts),
            "Z": (self.W @ self.class_means.T).tolist(),
        }


def solve(
    counts: Sequence[int],
    dim: int | None = None,
    *,
    loss: str = "ce",
    lambda_w: float = 5e-3,
    lambda_h: float = 5e-3,
    lambda_b: float = 0.0,
    solver: str = "gd",
    steps: int = 10000,
    lr: float = 1.0,
    seed: int = 0,
) -> Solution:
    """Minimise the UFM objective (:mod:`nclab.ufm.problem`) for ``counts`` with ``solver``.

    Args:
        counts: n_k per class (>= 2 classes).
        dim: feature dimension d (default K).
        loss: ``"ce"`` or ``"mse"``.
        lambda_w, lambda_h, lambda_b: weight decays in the (lambda/2)||.||^2 convention.
        solver: ``"gd"`` (any loss, any d) or ``"convex"`` (CE only, d >= K).
        steps, lr, seed: gradient descent's iterations, step size and initialisation (``"gd"`` only).

    Returns:
        :class:`Solution`; ``to_dict()`` adds the NC metrics, per-count groups and SELI distances.

    Raises:
        ConfigError: an unknown solver, or ``"convex"`` with the MSE loss or with d < K.

    Example:
        >>> s = solve([20, 20, 5], 4, solver="convex")
        >>> s.W.shape, s.H.shape, s.info["kkt"] < 1e-8
        (torch.Size([3, 4]), torch.Size([45, 4]), True)
    """
    if solver not in SOLVERS:
        raise ConfigError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    dim = dim or len(counts)
    ufm = UFM(counts, dim, loss=loss, lambda_w=lambda_w, lambda_h=lambda_h, lambda_b=lambda_b)
    counts, k = ufm.counts, ufm.num_classes
    if solver == "convex" and loss != "ce":
        raise ConfigError(f"the convex program is for the CE loss, got loss {loss!r}: use solver 'gd'")
    if solver == "convex" and dim < k:
        raise ConfigError(
            f"the convex program needs dim >= K ({k}), got {dim}: raise dim to {k} or use solver 'gd'"
        )
    if solver == "gd":
        res = ufm.fit(steps=steps, lr=lr, seed=seed)
        w, h, b, hc, objective = res.W, res.H, res.b, res.class_means(), res.objective
        info: dict[str, Any] = {"steps": res.steps}
    else:
        sol = solve_convex(counts, ufm_to_convex_lambda(lambda_w, lambda_h), lambda_b / 2)
        w, hc = factorize(sol.Z, counts, lambda_w, lambda_h, dim)
        h, b, objective = hc[ufm.labels], sol.b, sol.objective
        info = {"kkt": sol.kkt, "iterations": sol.iterations}
    return Solution(counts, dim, loss, solver, w, h, b, hc, ufm.labels, objective, info)
