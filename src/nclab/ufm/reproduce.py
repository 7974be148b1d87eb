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
- ``yaras``: Yaras et al. (NeurIPS 2022): steps for NC1 to reach 1e-3 with normalised features against
  weight decay.

matplotlib is imported here only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nclab.geometry import seli_distance
from nclab.ufm.convex import solve_convex
from nclab.ufm.problem import UFM
from nclab.ufm.summary import factorize
from nclab.ufm.theory import balanced_ce_minimizer, minority_collapse_threshold, zero_solution_threshold


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


def yaras(out: Path, quick: bool = False) -> list[Path]:
    k, n = 4, 10
    steps = 1500 if quick else 6000
    every = 10

    def steps_to(ufm: UFM, lr: float) -> int | None:
        res = ufm.fit(steps=steps, lr=lr, record_every=every)
        for h in res.history:
            if h.get("nc1") is not None and h["nc1"] < 1e-3:
                return h["step"]
        return None

    rows = [
        {
            "model": "normalized (tau=4)",
            "weight_decay": 0.0,
            "steps_to_nc1_1e-3": steps_to(UFM([n] * k, k, normalized=True, tau=4.0), 1.0),
        }
    ]
    for lam in [1e-2, 1e-3] if quick else [3e-2, 1e-2, 3e-3, 1e-3, 3e-4]:
        rows.append(
            {
                "model": "weight decay",
                "weight_decay": lam,
                "steps_to_nc1_1e-3": steps_to(UFM([n] * k, k, lambda_w=lam, lambda_h=lam, lambda_b=lam), 1.0),
            }
        )
    _write_csv(out / "yaras.csv", rows)
    _table(rows, f"yaras: GD steps until NC1 < 1e-3 (cap {steps}; None = not reached)")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{r['model']}\n{r['weight_decay']:g}" for r in rows]
    vals = [r["steps_to_nc1_1e-3"] or steps for r in rows]
    ax.bar(range(len(rows)), vals, color=["C1"] + ["C0"] * (len(rows) - 1))
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set(ylabel="steps to NC1 < 1e-3", title="Yaras et al.: GD steps until NC1 < 1e-3")
    fig.tight_layout()
    fig.savefig(out / "yaras.png", dpi=110)
    plt.close(fig)
    return [out / "yaras.png", out / "yaras.csv"]


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
    from nclab.errors import NclabError

    if name not in REPRODUCTIONS:
        raise NclabError(f"unknown reproduction {name!r}; choose from {', '.join(REPRODUCTIONS)}")
    _plt()  # before any work: without matplotlib, say which extra to install
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return REPRODUCTIONS[name](path, quick)
