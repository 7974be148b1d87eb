"""nclab.report.plots: every figure is PNG bytes or None without data, and an empty axis says why (inside
the figure and on the page)."""

import json
from pathlib import Path

import numpy as np
import pytest

from nclab.report import build_report
from nclab.report.rundir import Run

pytest.importorskip("matplotlib")
from nclab.report import plots  # noqa: E402 - needs matplotlib

PNG = b"\x89PNG\r\n\x1a\n"


def _run(rows, counts=(6000, 600, 60), geometry=None):
    return Run(Path("r"), "r", rows, list(counts), [str(i) for i in range(len(counts))], geometry or {})


@pytest.mark.parametrize(
    "key,counts,reason",
    [
        (
            "acc/few",
            (50, 30),
            "no few-shot classes: every class has at least 20 training samples (30 to 50 here)",
        ),
        (
            "acc/many",
            (50, 30),
            "no many-shot classes: no class has more than 100 training samples (30 to 50 here)",
        ),
        (
            "acc/medium",
            (500, 5),
            "no medium-shot classes: no class has 20 to 100 training samples (5 to 500 here)",
        ),
        (
            "nc/groups/few/minority_collapse",
            (500, 5),
            "the few-shot group has fewer than 2 classes: no pair to compare",
        ),
        ("nc_test/nc1", (500, 5), "not recorded: the runs measured no NC on test features"),
        (
            "nc/align/ee_ratio_min",
            (500, 5),
            "not recorded: the space-alignment metrics need NC tracking and a classifier",
        ),
        ("nc/nc3", (500, 5), "not recorded: NC tracking was off in these runs (train.nc_tracking)"),
        ("loss/test", (500, 5), "not recorded: no test loss in metrics.jsonl"),
        ("head/w_norm_mean", (500, 5), "not recorded: no head/w_norm_mean in metrics.jsonl"),
    ],
)
def test_missing_reason_by_hand(key, counts, reason):
    assert plots.missing_reason([_run([{"epoch": 1, "acc/all": 0.5}], counts)], key) == reason


def test_a_recorded_key_has_no_missing_reason():
    runs = [_run([{"epoch": 1, "acc/all": 0.5}]), _run([{"epoch": 1, "acc/all": 0.5, "acc/few": 0.1}])]
    assert plots.missing_reason(runs, "acc/few") is None  # one run has it
    assert plots.missing_reason(runs[:1], "acc/few") is not None
    assert ("accuracy (few)", plots.missing_reason(runs[:1], "acc/few")) in plots.empty_axes(
        runs[:1], "accuracy"
    )


def test_figures_are_none_without_data_and_png_with_it():
    empty = [_run([])]
    for fig in (plots.accuracy_loss, plots.nc_curves, plots.per_class, plots.collapse_curves):
        assert fig(empty) is None, fig.__name__
    assert plots.gram_heatmaps(empty[0]) is None  # no geometry/*.npz
    rows = [
        {"epoch": e, "acc/all": 0.5, "acc/many": 0.6, "loss/train": 1 / e, "nc/nc1": 1 / e,
         "acc/per_class": [0.9, 0.5, 0.1], "nc/groups/medium/minority_collapse": 0.1 * e}
        for e in (1, 2)
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    geo = {
        2: {
            "means": rng.normal(size=(3, 4)),
            "global_mean": rng.normal(size=4),
            "weights": rng.normal(size=(3, 4)),
        }
    }
    run = _run(rows, geometry=geo)
    for fig in (plots.accuracy_loss, plots.nc_curves, plots.per_class, plots.collapse_curves):
        assert fig([run])[:8] == PNG, fig.__name__
    assert plots.gram_heatmaps(run)[:8] == PNG


def _if100_run(path, with_medium=True):
    """A hand-written run directory at IF = 100 (counts 6000..60): no class is few-shot."""
    path.mkdir()
    counts = [6000, 2700, 1200, 600, 260, 120, 60]
    (path / "classes.json").write_text(json.dumps({"names": list("abcdefg"), "counts": counts}))
    rows = []
    for epoch in (1, 2):
        row = {"epoch": epoch, "acc/all": 0.5, "acc/many": 0.6, "acc/medium": 0.3, "acc/few": None}
        row.update({"loss/train": 1.0 / epoch, "nc/nc1": 1.0 / epoch, "nc/align/ee_ratio_mean": 0.5})
        if with_medium:
            row["nc/groups/medium/minority_collapse"] = 0.1 * epoch
        rows.append(row)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_empty_panels_say_why(tmp_path, monkeypatch):
    from nclab.report import plots

    noted = []
    real_note = plots._note
    monkeypatch.setattr(
        plots, "_note", lambda ax, text: (noted.append((ax.get_title(), text)), real_note(ax, text))
    )
    run = _if100_run(tmp_path / "if100")
    text = build_report([run], tmp_path / "r.html").read_text()
    few = "no few-shot classes: every class has at least 20 training samples (60 to 6000 here)"
    # inside the figure, on the empty axis
    assert ("minority-collapse index (few)", few) in noted
    assert any(t == "error-exponent ratio (min)" and "space-alignment" in w for t, w in noted)
    assert any(t == "nc/nc3" and "NC tracking was off" in w for t, w in noted)
    # and on the page, under the figure
    assert f"minority-collapse index (few): empty, {few}." in text
    assert f"accuracy (few): empty, {few}." in text
    assert "minority-collapse index (medium): empty" not in text
    # a panel with nothing at all says why instead of the generic line
    thin = _if100_run(tmp_path / "thin", with_medium=False)
    rows = [json.loads(ln) for ln in (thin / "metrics.jsonl").read_text().splitlines()]
    (thin / "metrics.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if not k.startswith("nc/")}) + "\n" for r in rows)
    )
    text = build_report([thin], tmp_path / "thin.html").read_text()
    assert "Not available: not recorded: NC tracking was off in these runs (train.nc_tracking)" in text
    assert f"Not available: {few}; the medium-shot group has fewer than 2 classes: no pair" in text
    assert "Not available: no geometry/*.npz" in text


def test_a_federated_run_is_drawn_over_rounds_with_its_local_training_loss(monkeypatch):
    """A federated run's rows count rounds and carry the round's mean local loss (fed/train_loss), not
    loss/train: the loss panel used to say "not recorded" and every axis said "epoch"."""
    seen = {}
    real_png = plots._png

    def keep(fig):
        seen["axes"] = [(ax.get_xlabel(), [ln.get_label() for ln in ax.get_lines()]) for ax in fig.axes]
        return real_png(fig)

    monkeypatch.setattr(plots, "_png", keep)
    rows = [{"epoch": r, "round": r, "acc/all": 0.1 * r, "fed/train_loss": 2.0 / r} for r in (5, 10)]
    fed = Run(Path("fed"), "fed", rows, [600] * 10, [str(c) for c in range(10)])
    assert plots.accuracy_loss([fed]).startswith(b"\x89PNG")
    assert seen["axes"] == [("round", ["fed all"]), ("round", ["fed local train"])]
    central = Run(Path("c"), "c", [{"epoch": 1, "acc/all": 0.5, "loss/train": 1.0}], [6] * 2, ["a", "b"])
    plots.accuracy_loss([fed, central])
    assert [x for x, _ in seen["axes"]] == ["epoch", "epoch"]  # a mixed figure keeps epochs
