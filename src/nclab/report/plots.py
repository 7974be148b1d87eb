"""The report's figures (matplotlib, imported here only). Each returns PNG bytes or None when the runs
lack what the panel needs (the page then says so instead of failing). An axis whose metric no run
recorded says why inside the axis (:func:`missing_reason`: an empty count group, NC tracking off, ...),
and the page repeats that under the figure (:func:`empty_axes`)."""

from __future__ import annotations

import io
import math
import re
import textwrap

import numpy as np

from nclab.report.rundir import Run

GROUPS = ("all", "many", "medium", "few")
#: the count thresholds of the many/medium/few groups (nclab.metrics.groups.split_groups defaults)
MANY, FEW = 100, 20


def missing_reason(runs: list[Run], key: str) -> str | None:
    """Why no run has a value of ``key`` (None when one has): in words, for the figure and the page.

    Example:
        >>> from pathlib import Path
        >>> run = Run(Path("r"), "r", [{"epoch": 1, "acc/all": 0.5}], [6000, 600, 60], ["a", "b", "c"])
        >>> missing_reason([run], "nc/groups/few/minority_collapse")
        'no few-shot classes: every class has at least 20 training samples (60 to 6000 here)'
    """
    for r in runs:
        if r.series(key)[0] or r.last.get(key) is not None:
            return None
    m = re.match(r"^(?:acc|nc|nc_test)/(?:groups/)?(many|medium|few)\b", key)
    if m:
        group = m.group(1)
        sizes = [c for r in runs for c in r.counts]
        members = {
            "many": [c for c in sizes if c > MANY],
            "medium": [c for c in sizes if FEW <= c <= MANY],
            "few": [c for c in sizes if c < FEW],
        }[group]
        if sizes and not members:
            rule = {
                "many": f"no class has more than {MANY} training samples",
                "medium": f"no class has {FEW} to {MANY} training samples",
                "few": f"every class has at least {FEW} training samples",
            }[group]
            return f"no {group}-shot classes: {rule} ({min(sizes)} to {max(sizes)} here)"
        if key.endswith("minority_collapse") and len(members) < 2:
            return f"the {group}-shot group has fewer than 2 classes: no pair to compare"
    if key.startswith("nc_test/"):
        return "not recorded: the runs measured no NC on test features"
    if key.startswith("nc/align/"):
        return "not recorded: the space-alignment metrics need NC tracking and a classifier"
    if key.startswith("nc/"):
        return "not recorded: NC tracking was off in these runs (train.nc_tracking)"
    if key.startswith("loss/"):
        return f"not recorded: no {key.split('/', 1)[1]} loss in metrics.jsonl"
    return f"not recorded: no {key} in metrics.jsonl"


def empty_axes(runs: list[Run], panel: str) -> list[tuple[str, str]]:
    """(axis title, reason) of each axis of ``panel`` (a key of :data:`PANEL_KEYS`) no run can fill."""
    out = []
    for key, title in PANEL_KEYS[panel]:
        why = missing_reason(runs, key)
        if why is not None:
            out.append((title, why))
    return out


def _note(ax, text: str) -> None:
    """Say inside an empty axis why it is empty."""
    ax.text(
        0.5,
        0.5,
        textwrap.fill(text, 34),
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=8,
        color="0.35",
        style="italic",
    )
    ax.set_xticks([])
    ax.set_yticks([])


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


def _x(runs: list[Run]) -> str:
    """The x axis: ``round`` when every run is federated (its rows count rounds), else ``epoch``."""
    return "round" if runs and all(r.rows and "round" in r.rows[0] for r in runs) else "epoch"


#: the losses a run may record, (key, line style, label): a centralised run's training and test loss, and
#: a federated round's mean local training loss
LOSSES = (("loss/train", "-", "train"), ("loss/test", "--", "test"), ("fed/train_loss", ":", "local train"))


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
        for key, ls, what in LOSSES:
            xs, ys = r.series(key)
            if xs:
                axes[1].plot(xs, ys, ls, color=f"C{i}", label=f"{r.name} {what}")
    x = _x(runs)
    axes[0].set(xlabel=x, ylabel="top-1 accuracy", title="accuracy (all / many / medium / few)")
    axes[1].set(xlabel=x, ylabel="loss", title="loss")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if not axes[1].get_legend_handles_labels()[0]:
        _note(axes[1], missing_reason(runs, "loss/train") or "no values")
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
        ax.set(title=key, xlabel=_x(runs))
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            _note(ax, missing_reason(runs, key) or "no values")
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
    for ax, (key, t) in zip(axes, PANEL_KEYS["per_class"]):
        ax.set_title(t)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        else:
            _note(ax, missing_reason(runs, key) or "no values of the length of the class list")
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
    keys = PANEL_KEYS["collapse"]
    if not any(r.series(k)[0] for r in runs for k, _ in keys):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, (key, title) in zip(axes, keys):
        for i, r in enumerate(runs):
            xs, ys = r.series(key)
            if xs:
                ax.plot(xs, ys, color=f"C{i}", label=r.name)
        ax.set(title=title, xlabel=_x(runs))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            _note(ax, missing_reason(runs, key) or "no values")
    fig.tight_layout()
    return _png(fig)


#: panel -> (metrics.jsonl key, axis title) of each axis (or curve group) that may be empty
PANEL_KEYS: dict[str, list[tuple[str, str]]] = {
    "accuracy": [(f"acc/{g}", f"accuracy ({g})") for g in GROUPS] + [("loss/train", "training loss")],
    "nc": [(k, k) for k in NC_KEYS],
    "per_class": [
        ("acc/per_class", "per-class accuracy"),
        ("nc/per_class/align_cos", "per-class alignment"),
        ("nc/per_class/w_norm", "classifier and feature norms"),
    ],
    "collapse": [
        ("nc/groups/few/minority_collapse", "minority-collapse index (few)"),
        ("nc/groups/medium/minority_collapse", "minority-collapse index (medium)"),
        ("nc/align/ee_ratio_mean", "error-exponent ratio (mean)"),
        ("nc/align/ee_ratio_min", "error-exponent ratio (min)"),
    ],
}
