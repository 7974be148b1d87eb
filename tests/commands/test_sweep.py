"""`nclab sweep` (nclab.commands.sweep): argument checks, every run's config composed before anything
runs, and --dry-run (a grid that trains: tests/sweep/test_engine.py)."""

import pytest

from nclab.cli import main
from tests.sweep.helpers import RECIPE, write_run


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text(
        f"base: [{RECIPE}]\noverrides: [train.epochs=2]\n"
        "axes:\n  method:\n    ce: []\n    crt: {from: {method: ce}, overrides: [stage2.method=crt]}\n"
        "seeds: [0, 1]\n"
    )
    return p


@pytest.mark.parametrize(
    "extra,msg",
    [(["--jobs", "0"], "--jobs must be >= 1, got 0"), (["--address", "1.2.3.4:6379"], "--engine ray")],
)
def test_bad_arguments_exit_2(spec, tmp_path, capsys, extra, msg):
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_run_the_schema_rejects_exits_2_naming_it(tmp_path, capsys):
    p = tmp_path / "spec.yaml"
    p.write_text(
        f"base: [{RECIPE}]\naxes:\n  lr:\n    ok: [optim.lr=0.1]\n    bad: [optim.lrr=0.1]\nseeds: [0]\n"
    )
    assert main(["sweep", str(p), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "run lr=bad/seed=0" in err and "Key 'lrr' not in 'OptimConfig'" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_what_each_run_needs_and_runs_nothing(spec, tmp_path, capsys):
    out = tmp_path / "out"
    write_run(out / "method=ce" / "seed=0", [{"epoch": 2}], epochs=2)  # complete
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "4 runs" and len(lines) == 5
    by = {ln.split()[1]: ln for ln in lines[:-1]}
    assert by["method=ce/seed=0"].split() == ["complete", "method=ce/seed=0"]
    assert by["method=ce/seed=1"].startswith("start ") and "--run-dir" in by["method=ce/seed=1"]
    assert str(RECIPE) in by["method=ce/seed=1"] and "train.seed=1" in by["method=ce/seed=1"]
    crt = by["method=crt/seed=0"]
    assert crt.startswith("after ") and "(from method=ce/seed=0)" in crt and "--resume" in crt
    assert sorted(p.name for p in out.rglob("*")) == ["config.yaml", "method=ce", "metrics.jsonl", "seed=0"]
