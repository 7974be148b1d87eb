"""A self-contained HTML page (images embedded as base64, no scripts, no network) plus PNG files."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import nclab.report.plots as plots
from nclab import textfmt
from nclab.report.rundir import Run, load_run

FINAL_KEYS = [
    ("acc/all", "acc all"),
    ("acc/many", "many"),
    ("acc/medium", "medium"),
    ("acc/few", "few"),
    ("nc/nc1_cdnv", "CDNV"),
    ("nc/nc1_stable", "NC1 (stable)"),
    ("nc/nc1", "NC1 (pinv)"),
    ("nc/nc3", "NC3"),
    ("nc_test/nc4", "NC4 (test)"),
    ("nc/groups/few/minority_collapse", "minority collapse (few)"),
    ("nc/align/ee_ratio_mean", "EE ratio"),
]


def build_report(run_dirs: list[str | Path], out: str | Path, *, rcond: float | None = None) -> Path:
    """Write ``out`` (HTML) and its PNGs (``<out stem>_*.png`` beside it); returns the HTML path.

    ``rcond``: report NC1 at this rank tolerance of Sigma_B^+ (re-ranked from the stored spectrum,
    :meth:`Run.with_rcond`) instead of the one each run measured with."""
    plots._plt()  # before reading anything: without matplotlib, say which extra to install
    runs: list[Run] = [load_run(d) for d in run_dirs]
    if rcond is not None:
        for r in runs:
            r.with_rcond(rcond)
    names = [r.name for r in runs]
    for i, r in enumerate(runs):  # make names unique for legends
        if names.count(r.name) > 1:
            r.name = f"{r.name}#{i}"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # (title, PNG or None, caption, panel of plots.PANEL_KEYS whose empty axes the page names)
    sections: list[tuple[str, bytes | None, str, str | None]] = [
        (
            "Accuracy and loss",
            plots.accuracy_loss(runs),
            "Top-1 accuracy over all classes and per training-count group, and the loss.",
            "accuracy",
        ),
        (
            "Neural-collapse metrics",
            plots.nc_curves(runs),
            "Training-feature NC metrics per epoch (log scale); NC4 on test features.",
            "nc",
        ),
        (
            "Per class vs training count",
            plots.per_class(runs),
            "Last evaluation: accuracy, alignment of w_k with its centred class mean, norms.",
            "per_class",
        ),
        (
            "Minority collapse and space alignment",
            plots.collapse_curves(runs),
            "Mean pairwise cosine of the classifier rows inside a group (1 = collapsed; -1/(K-1) = ETF) and the error-exponent ratio cos^2(angle(w_i - w_j, mu_i - mu_j)).",
            "collapse",
        ),
    ]
    for r in runs:
        sections.append(
            (
                f"Geometry of {r.name}",
                plots.gram_heatmaps(r),
                "Gram matrices of the last evaluation next to the simplex-ETF and SELI targets for the run's counts.",
                None,
            )
        )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>nclab report</title>",
        "<style>body{font-family:sans-serif;max-width:1400px;margin:auto;padding:1em;color:#222}"
        "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
        ".note{color:#777;font-style:italic}</style></head><body>",
        f"<h1>nclab report: {html.escape(', '.join(r.name for r in runs))}</h1>",
        "<h2>Final numbers</h2><table><tr><th>run</th><th>epochs</th>"
        + "".join(f"<th>{html.escape(t)}</th>" for _, t in FINAL_KEYS)
        + "</tr>",
    ]
    for r in runs:
        last = r.last
        label = r.name + (f" (stage 2: {last['stage']})" if "stage" in last else "")
        parts.append(
            f"<tr><td style='text-align:left'>{html.escape(label)}</td><td>{_cell(last.get('epoch'))}</td>"
            + "".join(f"<td>{_cell(last.get(k))}</td>" for k, _ in FINAL_KEYS)
            + "</tr>"
        )
    parts.append("</table>")
    parts.append(
        "<p>Training counts: " + "; ".join(f"{html.escape(r.name)}: {r.counts}" for r in runs) + "</p>"
    )
    for i, (title, png, caption, panel) in enumerate(sections):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        empty = plots.empty_axes(runs, panel) if panel else []
        if png is None:
            why = "; ".join(dict.fromkeys(reason for _, reason in empty))
            if not why and panel is None:
                why = "no geometry/*.npz with class means and classifier weights in this run directory"
            parts.append(
                "<p class='note'>Not available: "
                + html.escape(why or "the run directories hold no data for this panel")
                + ".</p>"
            )
            continue
        (out.parent / f"{out.stem}_{i}.png").write_bytes(png)
        b64 = base64.b64encode(png).decode()
        parts.append(
            f"<p>{html.escape(caption)}</p><img alt='{html.escape(title)}' src='data:image/png;base64,{b64}'>"
        )
        if empty:
            parts.append(
                "<ul class='note'>"
                + "".join(f"<li>{html.escape(t)}: empty, {html.escape(why)}.</li>" for t, why in empty)
                + "</ul>"
            )
    parts.append("</body></html>")
    out.write_text("\n".join(parts))
    return out


def _cell(v) -> str:
    """A table cell: the number as the commands print it (:func:`nclab.textfmt.num`), HTML-escaped."""
    return html.escape(textfmt.num(v))
