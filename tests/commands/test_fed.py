"""`nclab fed` (nclab.commands.fed): what it needs and the errors it exits 2 with before any round runs
(a federated run end to end: tests/fed/test_runner.py)."""

from nclab.cli import main
from tests.train.helpers import ROOT

RECIPE = ROOT / "configs" / "recipes" / "fed_synthetic.yaml"


def test_without_config_or_resume_it_exits_2_naming_both(capsys):
    assert main(["fed"]) == 2
    err = capsys.readouterr().err
    assert "give config files" in err and "--resume RUN_DIR" in err and err.count("\n") == 1


def test_a_misspelt_key_exits_2_before_anything_is_written(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["fed", str(RECIPE), "roundz=1", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "roundz" in err and err.count("\n") == 1
    assert not run.exists()


def test_resume_of_a_missing_run_exits_2(tmp_path, capsys):
    assert main(["fed", "--resume", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "none") in err and err.count("\n") == 1
