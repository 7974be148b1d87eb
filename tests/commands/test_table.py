"""`nclab table` (nclab.commands.table): output to stdout, a file or a block, the notes on incomplete runs
and duplicated evaluations (the aggregation itself: tests/sweep/test_table.py)."""

import json

import pytest

from nclab.cli import main
from tests.sweep.helpers import write_run


@pytest.fixture
def runs(tmp_path):
    for seed, acc in ((0, 0.5), (1, 0.7)):
        write_run(tmp_path / "g" / f"seed={seed}", [{"epoch": 1, "acc/all": 0.1}, {"epoch": 2, "acc/all": acc}],
                  seed=seed, axes={"method": "ce"})  # fmt: skip
    return tmp_path / "g"


def test_json_to_stdout_with_comma_separated_metrics(runs, capsys):
    assert main(["table", str(runs), "--metrics", "acc/all,loss/test", "--format", "json"]) == 0
    out = capsys.readouterr()
    (row,) = json.loads(out.out)
    assert row["method"] == "ce" and row["seeds"] == 2 and out.err == ""
    assert row["acc/all"]["mean"] == pytest.approx(0.6) and row["acc/all"]["n"] == 2
    assert row["acc/all"]["std"] == pytest.approx(((0.1**2 + 0.1**2) / 1) ** 0.5)  # sample std, ddof 1
    assert row["loss/test"] is None


def test_out_and_block(runs, tmp_path, capsys):
    assert main(["table", str(runs), "--block", "b"]) == 2
    assert "--block needs --out FILE" in capsys.readouterr().err
    md = tmp_path / "t.md"
    assert main(["table", str(runs), "--metrics", "acc/all", "--out", str(md)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {md}"
    text = md.read_text()
    assert "| method | seeds | acc/all (%)" in text and "60.0" in text
    doc = tmp_path / "doc.md"
    doc.write_text("head\n<!-- b:begin -->\nold\n<!-- b:end -->\ntail\n")
    assert main(["table", str(runs), "--metrics", "acc/all", "--out", str(doc), "--block", "b"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote block b of {doc}"
    new = doc.read_text()
    assert (
        new.startswith("head\n<!-- b:begin -->\n")
        and "old" not in new
        and new.endswith("<!-- b:end -->\ntail\n")
    )
    assert text.strip() in new


def test_incomplete_and_doubly_written_runs_are_said_on_stderr(runs, capsys):
    write_run(runs / "seed=2", [{"epoch": 1, "acc/all": 0.1}], seed=2, axes={"method": "ce"})  # incomplete
    dup = runs / "seed=1" / "metrics.jsonl"
    dup.write_text(dup.read_text() * 2)  # two writers: every evaluation twice
    assert main(["table", str(runs), "--metrics", "acc/all", "--format", "csv"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("nclab table: left out 1 incomplete runs, e.g. ") and "seed=2" in err[0]
    assert err[1].startswith(
        f"nclab table: warning: {dup} holds 2 evaluation(s) more than once (first: epoch 1)"
    )
