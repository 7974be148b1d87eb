"""``nclab ufm reproduce``: the papers' UFM figures and tables, regenerated (PNG + CSV + printed table).

- ``zhu``: Zhu et al. (NeurIPS 2021): GD from a random start on the balanced CE UFM reaches the simplex
  ETF with the closed-form norms (NC metrics against steps; norms GD vs closed form).
- ``seli``: Thrampoulidis et al. (NeurIPS 2022): distance to SELI against the regularisation for
  (R, 1/2)-STEP imbalance with R in {1, 10, 100}, and GD's distance to SELI against steps.
- ``hong-ling``: Hong and Ling (2023): the minority-collapse index against lam across the threshold
  sqrt(n_minor)/N for two clusters, and heat maps of the class-level logits Z for their Dataset1 and
  Dataset2 counts.
- ``spa``: space alignment in the UFM (papers.md section 8): GD on the bias-free CE UFM under
  (R, 1/2)-STEP imbalance, R in {10, 100}, K = 10, alone and with SpA-SLERP or SpA-Proj on W: distance
  to SELI, to the simplex ETF, mean alignment and minority cosine against steps, at a lambda below and
  one above the minority-collapse threshold sqrt(n_minor)/N.
- ``yaras``: Yaras et al. (NeurIPS 2022): GD steps until NC1 < 1e-3 for the sphere model (tau 2, 4, 8)
  and for weight decays 3e-2..1e-3 (from the same seeded starts, rescaled to unit rows and at nclab's
  default 0.1), each model at its own best step size (a grid per model, widened until the best is
  bracketed, then refined), 3 seeds; the verdict sentence is computed from the numbers.

matplotlib is imported here only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nclab.errors import NclabError
from nclab.geometry import seli_distance
from nclab.ufm.convex import solve_convex
from nclab.ufm.problem import UFM
from nclab.ufm.summary import factorize
from nclab.ufm.theory import (
    balanced_ce_minimizer,
    minority_collapse_threshold,
    normalized_min_loss,
    zero_solution_threshold,
)


def _plt():
    from nclab.extras import require

    require("matplotlib", what="UFM figures").use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _table(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}")
    keys = list(rows[0])
    print("  " + "  ".join(f"{k:>14}" for k in keys))
    for r in rows:
        cells = []
        for k in keys:
            v = r[k]
            cells.append(f"{v:>14.4g}" if isinstance(v, float) else f"{v!s:>14}")
        print("  " + "  ".join(cells))


def zhu(out: Path, quick: bool = False) -> list[Path]:
    k, n, lam = 4, 10, 1e-3
    steps = 3000 if quick else 20000
    ufm = UFM([n] * k, dim=k + 2, lambda_w=lam, lambda_h=lam, lambda_b=1e-2)
    res = ufm.fit(steps=steps, lr=1.0, record_every=max(steps // 60, 1))
    cf = balanced_ce_minimizer(k, n, lam, lam)
    rows = [
        {"quantity": "||w_k||", "gd": float(res.W.norm(dim=1).mean()), "closed_form": cf["w_norm"]},
        {"quantity": "||h_i||", "gd": float(res.H.norm(dim=1).mean()), "closed_form": cf["h_norm"]},
        {"quantity": "objective", "gd": res.objective, "closed_form": cf["objective"]},
    ]
    _write_csv(out / "zhu_norms.csv", rows)
    _write_csv(out / "zhu_history.csv", res.history)
    _table(rows, f"zhu: balanced CE UFM, K={k}, n={n}, lambda_W=lambda_H={lam}, {steps} GD steps")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("nc1", "nc2_etf", "nc3"):
        pts = [(h["step"], h[key]) for h in res.history if h.get(key) is not None]
        ax.semilogy([p[0] for p in pts], [max(p[1], 1e-16) for p in pts], label=key)
    ax.set(
        xlabel="GD step", ylabel="metric", title="Zhu et al.: GD on the balanced UFM reaches the simplex ETF"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "zhu.png", dpi=110)
    plt.close(fig)
    return [out / "zhu.png", out / "zhu_norms.csv"]


def seli(out: Path, quick: bool = False) -> list[Path]:
    k = 4
    ratios = [1, 10, 100]
    lams = [10**e for e in ([-5, -4, -3] if quick else [-6, -5.5, -5, -4.5, -4, -3.5, -3, -2.5])]
    rows = []
    for r in ratios:
        counts = [100] * (k // 2) + [max(1, 100 // r)] * (k // 2)
        found = {}
        prev = None
        # continuation: each solve starts from the solution at the next larger lam, beginning at 3e-2
        # (a cold start at R = 100, lam = 1e-3 takes FISTA minutes; warm, a few dozen iterations)
        for lam in sorted(set(lams) | {3e-2}, reverse=True):
            # SELI is the geometry of the UFM without bias
            prev = solve_convex(counts, lam, bias=False, init=prev)
            w, hc = factorize(prev.Z, counts, 1.0, 1.0)
            found[lam] = seli_distance(w, hc, counts)
        for lam in lams:
            d = found[lam]
            rows.append({"R": r, "lam": lam, "dist_W": d["W"], "dist_H": d["H"], "dist_Z": d["Z"]})
    _write_csv(out / "seli_vs_lambda.csv", rows)
    _table(
        [x for x in rows if x["lam"] in (lams[0], lams[-1])], "seli: distance to SELI vs lam, (R, 1/2)-STEP"
    )
    steps = 2000 if quick else 10000
    curves = {}
    for r in ratios:
        counts = [40] * (k // 2) + [max(1, 40 // r)] * (k // 2)
        ufm = UFM(counts, dim=k + 2, lambda_w=1e-4, lambda_h=1e-4, bias=False)
        hist: list[tuple[int, float]] = []

        def record(step, W, H, b, counts=counts, hist=hist, ufm=ufm):
            if step % max(steps // 50, 1) == 0:
                means = torch.stack([H[ufm.labels == c].mean(0) for c in range(len(counts))])
                hist.append((step, seli_distance(W, means, counts)["Z"]))

        ufm.fit(steps=steps, lr=1.0, callback=record)
        curves[r] = hist
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in ratios:
        xs = [x for x in rows if x["R"] == r]
        axes[0].loglog([x["lam"] for x in xs], [max(x["dist_W"], 1e-12) for x in xs], "o-", label=f"R={r}")
        axes[1].semilogy([s for s, _ in curves[r]], [max(v, 1e-12) for _, v in curves[r]], label=f"R={r}")
    axes[0].set(
        xlabel="lam (convex program)",
        ylabel="||G_W - G_W(SELI)||",
        title="distance to SELI vs regularisation",
    )
    axes[1].set(xlabel="GD step", ylabel="logit distance to SELI", title="GD toward SELI (lambda=1e-4)")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "seli.png", dpi=110)
    plt.close(fig)
    return [out / "seli.png", out / "seli_vs_lambda.csv"]


def hong_ling(out: Path, quick: bool = False) -> list[Path]:
    n_a, k_a, n_b, k_b = 100, 5, 10, 5
    counts = [n_a] * k_a + [n_b] * k_b
    thr = minority_collapse_threshold(n_a, k_a, n_b, k_b)
    zero = zero_solution_threshold(n_a, k_a, n_b, k_b)
    grid = [
        thr * f
        for f in ([0.5, 0.9, 1.1, 2.0] if quick else [0.25, 0.5, 0.7, 0.85, 0.95, 1.05, 1.2, 1.5, 2.0, 3.0])
    ]
    grid = [g for g in grid if g < zero]
    rows = []
    for lam in grid:
        z = solve_convex(counts, lam).Z
        zb = z[:, k_a:]  # minority columns
        spread = float((zb - zb.mean(1, keepdim=True)).norm() / z.norm())
        rows.append({"lam": lam, "lam_over_threshold": lam / thr, "minority_spread": spread})
    _write_csv(out / "hong_ling_collapse.csv", rows)
    _table(
        rows,
        f"hong-ling: two clusters ({k_a}x{n_a}, {k_b}x{n_b}); threshold sqrt(n_B)/N = {thr:.4g}, Z=0 from {zero:.4g}",
    )
    datasets = {
        "Dataset1": [5000] * 4 + [4000] * 3 + [3000] * 3,
        "Dataset2": [5000] * 4 + [3000] * 2 + [1000] * 4,
    }
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].semilogy(
        [r["lam_over_threshold"] for r in rows], [max(r["minority_spread"], 1e-16) for r in rows], "o-"
    )
    axes[0].axvline(1.0, color="k", ls="--", lw=1)
    axes[0].set(
        xlabel="lam / (sqrt(n_minor)/N)",
        ylabel="||Z_minor - mean column||_F / ||Z||_F",
        title="minority collapse: spread of minority columns",
    )
    for ax, (name, cnt) in zip(axes[1:], datasets.items()):
        big_n = sum(cnt)
        lam = 0.5 * math.sqrt(min(cnt)) / big_n * 2.2  # above the smallest group's threshold
        z = solve_convex(cnt, lam).Z
        im = ax.imshow(z.numpy(), cmap="RdBu_r")
        ax.set(title=f"{name}: Z at lam={lam:.2g}", xlabel="class (column = class mean)", ylabel="logit")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out / "hong_ling.png", dpi=110)
    plt.close(fig)
    return [out / "hong_ling.png", out / "hong_ling_collapse.csv"]


YARAS_NC1 = 1e-3
"""``yaras``: NC1 threshold whose crossing is counted (steps to NC1 < 1e-3)."""
YARAS_GAP = 0.1
"""``yaras``: a run counts as converged only with its objective within this relative gap of f*."""
YARAS_HOLD = 100
"""``yaras``: NC1 must stay below the threshold for max(this, the steps it took) steps."""


class _Stop(Exception):
    """Raised from a fit callback to end a run early (converged or diverged)."""


def _nc1(H: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """NC1 = tr(Sigma_W Sigma_B^+)/K (Papyan, Han and Donoho, PNAS 2020), float64, weighted global mean.

    The cheap form of ``nclab.metrics.measure``'s ``nc1`` for the tiny UFMs here (no groups, no classifier
    terms): with M~ = U S V^T the centred class means (K, d), Sigma_B = M~^T M~ / K, so
    tr(Sigma_W Sigma_B^+) = K sum_j v_j^T Sigma_W v_j / s_j^2 over the singular values above
    s_max max(K, d) eps (the rank rule of ``measure``). Tested against ``measure``.
    """
    h = H.detach().to(torch.float64)
    means = torch.zeros(k, h.shape[1], dtype=torch.float64).index_add_(0, labels, h)
    counts = torch.bincount(labels, minlength=k).to(torch.float64)
    means /= counts[:, None]  # (K, d)
    within = h - means[labels]  # (N, d)
    centred = means - (counts[:, None] * means).sum(0) / counts.sum()  # (K, d)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    keep = s > s[0] * max(centred.shape) * torch.finfo(torch.float64).eps
    proj = within @ vt[keep].T  # (N, r)
    return float(((proj**2).sum(0) / len(h) / s[keep] ** 2).sum())


def _optimum(ufm: UFM) -> float:
    """f*, the minimum objective of a balanced UFM in closed form: Yaras et al. (2022) for the sphere
    model, Zhu et al. (2021) with weight decay (the optimal bias of a balanced problem is 0)."""
    k = ufm.num_classes
    if ufm.normalized:
        return normalized_min_loss(k, ufm.tau)
    return float(balanced_ce_minimizer(k, ufm.counts[0], ufm.lambda_w, ufm.lambda_h)["objective"])


def steps_to_collapse(
    ufm: UFM,
    lr: float,
    *,
    seed: int = 0,
    init_scale: float = 0.1,
    cap: int = 3000,
    threshold: float = YARAS_NC1,
    gap: float = YARAS_GAP,
    hold: int = YARAS_HOLD,
) -> dict[str, Any]:
    """Steps of GD (Riemannian for the sphere model) from ``seed`` until NC1 stays below ``threshold``.

    NC1 and the objective f are read after every step. ``steps`` is the first step s of a stretch with
    NC1 < ``threshold`` that lasts to the end of the run; the run ends early (``"converged"``) once that
    stretch has lasted max(``hold``, s) steps with (f - f*)/f* <= ``gap`` (f* in closed form), so a
    transient dip of an unstable run does not count. It ends ``"diverged"`` when f is not finite, and
    at ``cap`` steps ``"converged"`` if the stretch reaches it with the gap met, else
    ``"not converged"``; ``steps`` is None unless converged. ``curve`` holds (step, NC1, (f - f*)/f*).
    Needs a balanced CE UFM with dim >= K - 1 (for f*).
    """
    if len(set(ufm.counts)) != 1 or ufm.dim < ufm.num_classes - 1 or ufm.loss != "ce":
        raise NclabError("steps_to_collapse needs a balanced CE UFM with dim >= K-1 (f* in closed form)")
    f_star = _optimum(ufm)
    curve: list[tuple[int, float, float]] = []
    state: dict[str, Any] = {"diverged": False, "since": None}

    def check(step: int, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> None:
        with torch.no_grad():
            f = float(ufm.objective(W, H, b))
            if not math.isfinite(f):
                state["diverged"] = True
                raise _Stop
            nc1 = _nc1(H, ufm.labels, ufm.num_classes)
        rel = (f - f_star) / f_star
        curve.append((step, nc1, rel))
        state["since"] = (state["since"] or step) if nc1 < threshold else None
        if state["since"] and step - state["since"] + 1 >= max(hold, state["since"]) and rel <= gap:
            raise _Stop

    try:
        ufm.fit(steps=cap, lr=lr, seed=seed, init_scale=init_scale, callback=check)
    except _Stop:
        pass
    if state["diverged"]:
        status = "diverged"
    elif state["since"] and curve[-1][2] <= gap:
        status = "converged"
    else:
        status = "not converged"
    return {"status": status, "steps": state["since"] if status == "converged" else None, "curve": curve}


def best_step_size(trials: dict[float, list[int | None]]) -> float | None:
    """The step size with the fewest mean steps among those where every seed converged (None: none did).

    ``trials`` maps a step size to its steps per seed (None: diverged or not converged). Ties go to
    the smaller step size.
    """
    ok = {lr: sum(s) / len(s) for lr, s in trials.items() if s and all(x is not None for x in s)}
    return min(ok, key=lambda lr: (ok[lr], lr)) if ok else None


def step_size_search(
    make: Callable[[], UFM],
    lrs: list[float],
    seeds: list[int],
    *,
    init_scale: float = 0.1,
    cap: int = 3000,
    widen: int = 3,
    refine: int = 1,
) -> dict[str, Any]:
    """Each step size of ``lrs`` (increasing, geometric) on every seed; the best by :func:`best_step_size`.

    While the best is the smallest or largest step size tried, one more grid ratio is tried on that
    side (at most ``widen`` times). Then ``refine`` rounds of bisection (geometric): round j tries the
    best times ratio^(+-1/2^j), so the best is known to a factor ratio^(1/2^refine).
    ``bracketed``: the best has a tried step size on each side.
    Returns ``{"runs": {lr: [run of each seed]}, "best": lr or None, "bracketed": bool}``.
    """
    if len(lrs) < 2 or any(b <= a for a, b in zip(lrs, lrs[1:])) or not seeds:
        raise NclabError(f"need >= 2 increasing step sizes and >= 1 seed, got lrs={lrs}, seeds={seeds}")
    ratio = lrs[1] / lrs[0]
    runs: dict[float, list[dict[str, Any]]] = {}

    def trial(lr: float) -> None:
        if not any(math.isclose(lr, x) for x in runs):
            runs[lr] = [steps_to_collapse(make(), lr, seed=s, init_scale=init_scale, cap=cap) for s in seeds]

    def best() -> float | None:
        return best_step_size({lr: [r["steps"] for r in rs] for lr, rs in runs.items()})

    for lr in lrs:
        trial(lr)
    for _ in range(widen):
        b, tried = best(), sorted(runs)
        if b is None or tried[0] < b < tried[-1]:
            break
        trial(b * ratio if b == tried[-1] else b / ratio)
    b = best()
    for j in range(1, refine + 1):
        if b is None:
            break
        step = ratio ** (0.5**j)
        for lr in (b / step, b * step):
            trial(lr)
        b = best()
    tried = sorted(runs)
    return {"runs": runs, "best": b, "bracketed": b is not None and tried[0] < b < tried[-1]}


def yaras_verdict(rows: list[dict[str, Any]]) -> str:
    """Reproduced / not reproduced / mixed, from each model's steps at its own best step size.

    Yaras et al. (NeurIPS 2022) claim that collapse takes fewer steps with normalised features than
    with weight decay. Model A is faster than B when A's slowest seed beats B's fastest (the ranges
    over seeds do not overlap); a model that converged at no step size is slower than any that did.
    The fastest sphere model (by mean; its temperature is tuned like a weight decay) is compared with
    every weight-decay model: reproduced when it is faster than all of them, not reproduced when it
    is faster than none, mixed otherwise.
    """
    norm = [r for r in rows if r["model"] == "normalized"]
    wd = [r for r in rows if r["model"] != "normalized"]
    if not norm or not wd:
        raise NclabError("yaras_verdict needs at least one sphere model and one weight-decay model")
    slow = (math.inf, math.inf)

    def span(r: dict[str, Any]) -> tuple[float, float]:
        return slow if r["steps_mean"] is None else (r["steps_min"], r["steps_max"])

    best = min(norm, key=lambda r: math.inf if r["steps_mean"] is None else r["steps_mean"])
    beats = [span(best)[1] < span(r)[0] for r in wd]
    loses = [span(r)[1] < span(best)[0] for r in wd]
    word = "reproduced" if all(beats) else "not reproduced" if not any(beats) else "mixed"

    def show(r: dict[str, Any]) -> str:
        if r["steps_mean"] is None:
            return f"{r['label']}: none converged"
        rng = f"{r['steps_min']}-{r['steps_max']}"
        return f"{r['label']}: {r['steps_mean']:.0f} ({rng}) at lr {r['best_lr']:.3g}"

    return (
        f"Faster collapse with normalised features: {word.upper()}. The fastest sphere model "
        f"({best['label']}) is faster than {sum(beats)} of {len(wd)} weight-decay models, slower than "
        f"{sum(loses)}, level with {len(wd) - sum(beats) - sum(loses)}. Steps to NC1 < {YARAS_NC1:g}, mean "
        f"(range over seeds) at each model's best step size: " + "; ".join(show(r) for r in norm + wd) + "."
    )


def yaras(out: Path, quick: bool = False) -> list[Path]:
    k, n = 4, 10
    seeds = [0] if quick else [0, 1, 2]
    cap = 500 if quick else 3000
    grid = [10**e for e in ([0.0, 0.5, 1.0] if quick else [-1.0, -0.5, 0.0, 0.5, 1.0])]
    unit = 1 / math.sqrt(k)  # Gaussian rows of squared norm 1 on average: the sphere model's start, unscaled
    taus = [4.0] if quick else [2.0, 4.0, 8.0]
    lams = [1e-2] if quick else [3e-2, 1e-2, 3e-3, 1e-3]
    scales = [unit] if quick else [unit, 0.1]
    models: list[tuple[dict[str, Any], Callable[[], UFM]]] = [
        (
            {"model": "normalized", "label": f"sphere tau={t:g}", "tau": t, "weight_decay": 0.0, "init": 1.0},
            lambda t=t: UFM([n] * k, k, normalized=True, tau=t),
        )
        for t in taus
    ]
    for s in scales:
        name = "unit init" if s == unit else f"init {s:g}"
        models += [
            (
                {
                    "model": "weight decay",
                    "label": f"wd {lam:g}, {name}",
                    "tau": None,
                    "weight_decay": lam,
                    "init": s,
                },
                lambda lam=lam: UFM([n] * k, k, lambda_w=lam, lambda_h=lam, lambda_b=lam),
            )
            for lam in lams
        ]
    rows, grid_rows, curves = [], [], {}
    for info, make in models:
        found = step_size_search(
            make, grid, seeds, init_scale=info["init"], cap=cap, refine=1 if quick else 2
        )
        for lr in sorted(found["runs"]):
            for s, r in zip(seeds, found["runs"][lr]):
                grid_rows.append(
                    {"label": info["label"], "lr": lr, "seed": s, **{x: r[x] for x in ("status", "steps")}}
                )
        best = found["best"]
        steps = [r["steps"] for r in found["runs"][best]] if best is not None else []
        tried = sorted(found["runs"])
        rows.append(
            {
                **info,
                "best_lr": best,
                "lr_tried": f"{tried[0]:.3g}..{tried[-1]:.3g} ({len(tried)})",
                "bracketed": found["bracketed"],
                "steps_mean": sum(steps) / len(steps) if steps else None,
                "steps_min": min(steps) if steps else None,
                "steps_max": max(steps) if steps else None,
            }
        )
        curves[info["label"]] = found["runs"][best][0]["curve"] if best is not None else []
    verdict = yaras_verdict(rows)
    _write_csv(out / "yaras.csv", rows)
    _write_csv(out / "yaras_grid.csv", grid_rows)
    (out / "yaras_verdict.txt").write_text(verdict + "\n")
    shown = ["label", "best_lr", "lr_tried", "bracketed", "steps_mean", "steps_min", "steps_max"]
    _table(
        [{key: r[key] for key in shown} for r in rows],
        f"yaras: GD steps until NC1 < {YARAS_NC1:g} at each model's best step size, K={k}, n={n}, d={k}, "
        f"seeds {seeds}, cap {cap} (None: no step size converged on every seed)",
    )
    print(f"\n{verdict}")
    _yaras_figure(out / "yaras.png", [info for info, _ in models], grid_rows, curves, cap)
    return [out / "yaras.png", out / "yaras.csv", out / "yaras_grid.csv", out / "yaras_verdict.txt"]


def _yaras_figure(
    path: Path,
    models: list[dict[str, Any]],
    grid_rows: list[dict[str, Any]],
    curves: dict[str, Any],
    cap: int,
) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    taus = sorted({m["tau"] for m in models if m["model"] == "normalized"})
    lams = sorted({m["weight_decay"] for m in models if m["model"] != "normalized"}, reverse=True)
    for info in models:  # one colour per temperature and per weight decay; the line style says the init
        label = info["label"]
        if info["model"] == "normalized":
            color, style = f"C{taus.index(info['tau']) % 10}", "-"
        else:
            color = f"C{(len(taus) + lams.index(info['weight_decay'])) % 10}"
            style = "--" if info["init"] == 0.1 else ":"
        by_lr: dict[float, list[int | None]] = {}
        for g in grid_rows:
            if g["label"] == label:
                by_lr.setdefault(g["lr"], []).append(g["steps"])
        ok = sorted(lr for lr, s in by_lr.items() if all(x is not None for x in s))
        axes[0].loglog(
            ok, [sum(by_lr[lr]) / len(by_lr[lr]) for lr in ok], "o" + style, color=color, label=label
        )
        failed = sorted(lr for lr in by_lr if lr not in ok)
        axes[0].plot(failed, [cap] * len(failed), "x", color=color)
        curve = curves[label]
        steps = [c[0] for c in curve]
        axes[1].semilogy(steps, [max(c[1], 1e-16) for c in curve], style, color=color, label=label)
        axes[2].semilogy(steps, [max(c[2], 1e-16) for c in curve], style, color=color, label=label)
    axes[0].set(
        xlabel="step size", ylabel=f"steps to NC1 < {YARAS_NC1:g}", title="step-size grid (x: a seed failed)"
    )
    axes[1].axhline(YARAS_NC1, color="k", ls="--", lw=1)
    axes[1].set(xlabel="GD step", ylabel="NC1", title="NC1 at each model's best step size (seed 0)")
    axes[2].set(
        xlabel="GD step", ylabel="(f - f*) / f*", title="objective gap at the best step size (seed 0)"
    )
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


REPRODUCTIONS: dict[str, Callable[[Path, bool], list[Path]]] = {
    "zhu": zhu,
    "seli": seli,
    "hong-ling": hong_ling,
    "yaras": yaras,
}


def spa(out: Path, quick: bool = False) -> list[Path]:
    from nclab.ufm.spa import STRATEGIES, run_spa_ufm

    steps = 1000 if quick else 6000
    rows, curves = [], {}
    for r in (10, 100):
        counts = [100] * 5 + [100 // r] * 5
        for lam in (1e-3, 5e-3):
            for strat in STRATEGIES:
                hist = run_spa_ufm(counts, strat, lam=lam, steps=steps, record_every=max(steps // 60, 1))
                curves[(r, lam, strat)] = hist
                rows.append(
                    {
                        "R": r,
                        "lam": lam,
                        "threshold": minority_collapse_threshold(100, 5, 100 // r, 5),
                        "strategy": strat,
                        **{k: v for k, v in hist[-1].items() if k != "step"},
                    }
                )
    _write_csv(out / "spa_ufm.csv", rows)
    _table(rows, f"spa: GD on the CE UFM with SpA on W, K=10, (R, 1/2)-STEP, {steps} steps")
    plt = _plt()
    keys = [
        ("seli_Z", "logit distance to SELI"),
        ("etf_W", "W Gram distance to ETF"),
        ("minority_cos", "minority cos"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for i, r in enumerate((10, 100)):
        for j, (key, label) in enumerate(keys):
            ax = axes[i, j]
            for strat in STRATEGIES:
                h = curves[(r, 1e-3, strat)]
                ax.plot([x["step"] for x in h], [x[key] for x in h], label=strat)
            ax.set(xlabel="GD step", ylabel=label, title=f"R = {r}, lambda = 1e-3")
            ax.legend()
    fig.tight_layout()
    fig.savefig(out / "spa_ufm.png", dpi=110)
    plt.close(fig)
    return [out / "spa_ufm.png", out / "spa_ufm.csv"]


REPRODUCTIONS["spa"] = spa


def reproduce(name: str, out: str | Path, *, quick: bool = False) -> list[Path]:
    """Run one reproduction, writing into ``out``; returns the files written."""
    if name not in REPRODUCTIONS:
        raise NclabError(f"unknown reproduction {name!r}; choose from {', '.join(REPRODUCTIONS)}")
    _plt()  # before any work: without matplotlib, say which extra to install
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return REPRODUCTIONS[name](path, quick)
