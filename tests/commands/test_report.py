"""`nclab report` (nclab.commands.report): the default output path, the warnings it prints, the exit code
of a bad run directory (the page itself: tests/report/test_html.py)."""

import json

import pytest

from nclab.cli import main

pytest.importorskip("matplotlib")


def _thin(path, lines):
    path.mkdir()
    (path / "classes.json").write_text(json.dumps({"names": ["a", "b"], "counts": [10, 2]}))
    (path / "metrics.jsonl").write_text("".join(lines))
    return path


def test_not_a_run_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and err.count("\n") == 1


def test_one_run_writes_its_report_into_the_run_directory(tmp_path, capsys):
    run = _thin(tmp_path / "r", [json.dumps({"epoch": 1, "acc/all": 0.5}) + "\n"])
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"report: {(run / 'report.html').resolve()}" and out.err == ""
    assert (run / "report.html").is_file()


def test_several_runs_default_to_report_html_here(tmp_path, capsys, monkeypatch):
    a = _thin(tmp_path / "a", [json.dumps({"epoch": 1, "acc/all": 0.5}) + "\n"])
    b = _thin(tmp_path / "b", [json.dumps({"epoch": 1, "acc/all": 0.6}) + "\n"])
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(a), str(b)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {(tmp_path / 'report.html').resolve()}"


def test_a_torn_last_row_is_drawn_and_said_on_stderr(tmp_path, capsys):
    rows = [json.dumps({"epoch": 1, "acc/all": 0.5}) + "\n", '{"epoch": 2, "acc/a']
    run = _thin(tmp_path / "torn", rows)
    assert main(["report", str(run), "--out", str(tmp_path / "t.html")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nclab report: warning: ") and "torn" in err[0]
