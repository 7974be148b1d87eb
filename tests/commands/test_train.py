"""`nclab train` (nclab.commands.train): what it needs, the default run directory, a resume with more
overrides (the Trainer itself: tests/train/test_loop.py; resume attacks: tests/train/test_trust.py)."""

import json

from nclab.cli import main
from tests.train.helpers import ROOT, SMOKE


def test_without_config_or_resume_it_exits_2_naming_both(capsys):
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert "give config files" in err and "--resume RUN_DIR" in err and err.count("\n") == 1
    assert main(["train", "train.epochs=1"]) == 2  # overrides alone are not a config


def test_the_default_run_directory_joins_the_config_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ce = ROOT / "configs" / "methods" / "ce.yaml"
    assert main(["train", str(SMOKE), str(ce), "train.epochs=1", "train.nc_tracking=false"]) == 0
    assert capsys.readouterr().out.strip().endswith("run directory: runs/synthetic-ce")
    assert (tmp_path / "runs" / "synthetic-ce" / "metrics.jsonl").is_file()


def test_resume_takes_further_overrides(tmp_path, capsys):
    run = tmp_path / "r"
    assert (
        main(["train", str(SMOKE), "train.epochs=1", "train.nc_tracking=false", "--run-dir", str(run)]) == 0
    )
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0  # the first positional too
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"run directory: {run}"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
