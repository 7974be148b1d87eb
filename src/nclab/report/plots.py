"""The report's figures (matplotlib, imported here only). Each returns PNG bytes or None when the runs
lack what the panel needs (the page then says so instead of failing)."""

from __future__ import annotations

import io
import math

import numpy as np

from nclab.report.rundir import Run

GROUPS = ("all", "many", "medium", "few")


def _plt():
    from nclab.extras import require

    require("matplotlib", what="reports").use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    return buf.getvalue()


def accuracy_loss(runs: list[Run]) -> bytes | None:
    if not any(r.rows for r in runs):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    styles = dict(zip(GROUPS, ("-", "--", "-.", ":")))
    for i, r in enumerate(runs):
        for g in GROUPS:
            xs, ys = r.series(f"acc/{g}")
            if xs:
                axes[0].plot(xs, ys, styles[g], color=f"C{i}", label=f"{r.name} {g}")
        for key, ls in (("loss/train", "-"), ("loss/test", "--")):
            xs, ys = r.series(key)
            if xs:
                axes[1].plot(xs, ys, ls, color=f"C{i}", label=f"{r.name} {key.split('/')[1]}")
    axes[0].set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy (all / many / medium / few)")
    axes[1].set(xlabel="epoch", ylabel="loss", title="loss")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


NC_KEYS = ("nc/nc1", "nc/nc2_etf", "nc/nc3", "nc/nc2_equinorm", "nc_test/nc4")


def nc_curves(runs: list[Run]) -> bytes | None:
    if not any(r.series(k)[0] for r in runs for k in NC_KEYS):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(NC_KEYS), figsize=(16, 3.4))
    for ax, key in zip(axes, NC_KEYS):
        for i, r in enumerate(runs):
            xs, ys = r.series(key)
            if xs:
                ax.semilogy(xs, [max(y, 1e-8) for y in ys], color=f"C{i}", label=r.name)
        ax.set(title=key, xlabel="epoch")
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def per_class(runs: list[Run]) -> bytes | None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    drawn = False
    for i, r in enumerate(runs):
        last = r.last
        x = np.array(r.counts, float)
        for ax, key, label in (
            (axes[0], "acc/per_class", "test accuracy"),
            (axes[1], "nc/per_class/align_cos", "cos(w_k, mu_k - mu_G)"),
        ):
            v = last.get(key)
            if isinstance(v, list) and len(v) == len(x):
                y = np.array([np.nan if a is None else a for a in v], float)
                ax.semilogx(x, y, "o", color=f"C{i}", label=r.name, alpha=0.8)
                ax.set(xlabel="training count", ylabel=label)
                drawn = True
        wn, fn = last.get("nc/per_class/w_norm"), last.get("nc/per_class/norm")
        if isinstance(wn, list) and isinstance(fn, list):
            axes[2].loglog(
                x, [np.nan if a is None else a for a in wn], "o", color=f"C{i}", label=f"{r.name} ||w_k||"
            )
            axes[2].loglog(
                x,
                [np.nan if a is None else a for a in fn],
                "^",
                color=f"C{i}",
                label=f"{r.name} ||mu_k - mu_G||",
                alpha=0.6,
            )
            axes[2].set(xlabel="training count", ylabel="norm")
            drawn = True
    if not drawn:
        _plt().close(fig)
        return None
    for ax, t in zip(axes, ("per-class accuracy", "per-class alignment", "classifier and feature norms")):
        ax.set_title(t)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x)
    return x / n if n > 0 else x


def gram_heatmaps(run: Run) -> bytes | None:
    """Gram of centred means, of classifier rows and the class-mean logits, beside ETF and SELI."""
    if not run.geometry:
        return None
    g = run.geometry[max(run.geometry)]
    if "means" not in g or "weights" not in g or not np.isfinite(g["means"]).all():
        return None
    from nclab.geometry import seli_geometry

    counts = np.asarray(g.get("counts", run.counts), float)
    k = len(counts)
    mu = g["means"].astype(float)
    mt = mu - (counts[:, None] * mu).sum(0) / counts.sum()
    w = g["weights"].astype(float)
    etf = (np.eye(k) - 1.0 / k) / math.sqrt(k - 1)
    seli = seli_geometry(counts.astype(int).tolist())
    panels = [
        ("M~ M~^T (features)", _unit(mt @ mt.T)),
        ("W W^T (classifier)", _unit(w @ w.T)),
        ("W M~^T (class-mean logits)", _unit(w @ mt.T)),
        ("simplex ETF target", etf),
        ("SELI: G_H", seli.G_H.numpy()),
        ("SELI: G_W", seli.G_W.numpy()),
    ]
    plt = _plt()
    fig, axes = plt.subplots(1, 6, figsize=(18, 3.3))
    lim = max(abs(p[1]).max() for p in panels)
    for ax, (title, m) in zip(axes, panels):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, fraction=0.015)
    fig.suptitle(
        f"{run.name}: epoch {max(run.geometry)} (unit Frobenius norm; classes ordered by index)", fontsize=9
    )
    return _png(fig)


def collapse_curves(runs: list[Run]) -> bytes | None:
    keys = [
        ("nc/groups/few/minority_collapse", "minority-collapse index (few)"),
        ("nc/groups/medium/minority_collapse", "minority-collapse index (medium)"),
        ("nc/align/ee_ratio_mean", "error-exponent ratio (mean)"),
        ("nc/align/ee_ratio_min", "error-exponent ratio (min)"),
    ]
    if not any(r.series(k)[0] for r in runs for k, _ in keys):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, (key, title) in zip(axes, keys):
        for i, r in enumerate(runs):
            xs, ys = r.series(key)
            if xs:
                ax.plot(xs, ys, color=f"C{i}", label=r.name)
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
