import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nclab.cli import main
from nclab.errors import DataError
from nclab.report import build_report, load_run

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "recipes" / "synthetic.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    assert main(["train", str(SMOKE), "train.epochs=2", "--run-dir", str(base / "ce")]) == 0
    assert (
        main(
            [
                "train",
                str(SMOKE),
                "train.epochs=2",
                "align.strategies=[slerp]",
                "--run-dir",
                str(base / "ce_slerp"),
            ]
        )
        == 0
    )
    return base


def test_report_of_two_runs_is_self_contained(runs, tmp_path, capsys):
    out = tmp_path / "rep" / "report.html"
    assert main(["report", str(runs / "ce"), str(runs / "ce_slerp"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", text)
    assert len(imgs) == 6  # accuracy, NC, per class, collapse, two geometry panels
    for b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ce_slerp" in text and "Final numbers" in text
    assert len(list(out.parent.glob("report_*.png"))) == 6


def test_missing_panels_are_noted_not_fatal(runs, tmp_path):
    r = tmp_path / "thin"
    r.mkdir()
    (r / "classes.json").write_text(json.dumps({"names": ["a", "b"], "counts": [10, 2]}))
    (r / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "acc/all": 0.5}) + "\n")
    out = build_report([r], tmp_path / "thin.html")
    assert out.read_text().count("Not available") >= 3
    run = load_run(r)
    assert run.series("acc/all") == ([1], [0.5])


def test_not_a_run_dir_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DataError, match="not a run directory"):
        load_run(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and err.count("\n") == 1


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
@pytest.mark.skipif(
    _chromium() is None, reason="Chromium is not installed (scripts/test.sh installs it on Debian)"
)
def test_report_renders_in_headless_chromium(runs, tmp_path):
    from PIL import Image, ImageStat

    out = build_report([runs / "ce", runs / "ce_slerp"], tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,2400",
        "--enable-logging=stderr",
        "--v=0",
    ]
    r = subprocess.run(
        [_chromium(), *flags, f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), r.stderr[-2000:]
    console_errors = [
        ln for ln in r.stderr.splitlines() if "CONSOLE" in ln and ("ERROR" in ln or "Uncaught" in ln)
    ]
    assert not console_errors, console_errors
    dom = subprocess.run(
        [_chromium(), *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert dom.count("<img") == 6
    img = Image.open(shot).convert("L")
    assert ImageStat.Stat(img).stddev[0] > 10  # not blank


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
