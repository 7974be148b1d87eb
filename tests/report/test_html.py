"""nclab.report.html: the self-contained page (embedded PNGs, no network, panels that cannot be drawn
noted), rendered by a headless browser."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nclab.cli import main
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
