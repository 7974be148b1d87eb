"""nclab.sweep.execute: what a run needs (complete, resume, after, start), its command line, a skipped
run left untouched, a killed sweep resumed exactly, the sources a run records."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nclab.cli import main
from nclab.rundir import RunDir
from nclab.sweep.execute import command_line, execute, plan
from tests.sweep.helpers import RECIPE, ROOT, files_of, metrics_of, write_run


def _payload(tmp_path, name="run", **kw):
    d = tmp_path / name
    p = {"label": name, "command": "train", "dir": str(d), "log": str(tmp_path / f"{name}.log"),
         "files": ["a.yaml", "b.yaml"], "overrides": ["train.epochs=2"], "source": None,
         "axes": {"m": name}, "seed": 0, "order": [0], "spec": "spec.yaml", "cpus": 1, "cwd": str(tmp_path)}  # fmt: skip
    return {**p, **kw}


def test_plan_reads_the_run_directory(tmp_path):
    p = _payload(tmp_path)
    assert plan(p) == "start"  # nothing there
    d = Path(p["dir"])
    write_run(d, [{"epoch": 1}], epochs=2)
    assert plan(p) == "start"  # a config but no checkpoint
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.pt").write_bytes(b"x")
    assert plan(p) == "resume"
    assert plan({**p, "source": "/runs/ce"}) == "after /runs/ce"
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n" + json.dumps({"epoch": 2}) + "\n")
    assert plan(p) == "complete" and plan({**p, "source": "/runs/ce"}) == "complete"


def test_command_line_starts_or_resumes_through_the_cli(tmp_path):
    p = _payload(tmp_path)
    py = [sys.executable, "-m", "nclab", "train"]
    assert command_line(p, "start") == [*py, "a.yaml", "b.yaml", "train.epochs=2", "--run-dir", p["dir"]]
    assert command_line(p, "resume") == [*py, "--resume", p["dir"]]
    assert command_line(p, "after /runs/ce") == [*py, "--resume", p["dir"]]
    assert command_line({**p, "command": "fed"}, "resume")[3] == "fed"


def test_a_complete_run_is_skipped_untouched(tmp_path):
    p = _payload(tmp_path)
    d = write_run(Path(p["dir"]), [{"epoch": 2}], epochs=2)
    before = files_of(d)
    res = execute(p)
    assert res["status"] == "skipped" and res["rc"] == 0 and res["seconds"] == 0.0
    assert files_of(d) == before and not Path(p["log"]).exists()


def test_a_run_after_an_incomplete_source_fails_without_running(tmp_path):
    src = write_run(tmp_path / "src", [{"epoch": 1}], epochs=2)
    p = _payload(tmp_path, source=str(src))
    res = execute(p)
    assert res["status"] == "failed" and res["rc"] is None and "is not complete" in res["reason"]
    assert not Path(p["dir"]).exists() and not Path(p["log"]).exists()


def test_a_run_that_cannot_be_prepared_fails_with_its_log(tmp_path):
    src = write_run(tmp_path / "src", [{"epoch": 2}], epochs=2)  # complete
    p = _payload(tmp_path, source=str(src), files=[], overrides=["train.epochz=3"])
    res = execute(p)
    assert res["status"] == "failed" and res["rc"] is None and res["reason"]
    assert Path(p["log"]).read_text().startswith(f"nclab sweep: cannot prepare {p['dir']}")


def test_killed_sweep_resumes_exactly(tmp_path):
    """Two identical runs (same config and seed); the sweep is killed while the second trains; the second
    invocation leaves the first untouched and resumes the second to the first's metrics."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"base: [{RECIPE}]\noverrides: [train.epochs=40, train.nc_every=1000, train.ckpt_every_steps=5]\n"
        "axes: {copy: {a: [], b: []}}\nseeds: [0]\n"
    )
    out = tmp_path / "out"
    a, b = out / "copy=a" / "seed=0", out / "copy=b" / "seed=0"
    cmd = [sys.executable, "-m", "nclab", "sweep", str(spec), "--out", str(out)]
    p = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not (b / "checkpoints" / "last.pt").is_file() and p.poll() is None and time.time() < deadline:
            time.sleep(0.2)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert RunDir(a).is_complete()
    if RunDir(b).is_complete():
        pytest.skip(f"the second run finished before the kill: {sorted(os.listdir(b))} {p.returncode}")
    before = files_of(a)
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    assert files_of(a) == before
    assert "--resume" in (out / "copy=b" / "seed=0.log").read_text()
    assert metrics_of(b) == metrics_of(a)


@pytest.mark.slow
def test_fed_sweep_records_its_sources(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"command: fed\nbase: [{ROOT / 'configs' / 'recipes' / 'fed_synthetic.yaml'}]\noverrides: [rounds=1]\n"
        "axes: {method: {fedavg: [method=fedavg]}}\nseeds: [0]\n"
    )
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    run = out / "method=fedavg" / "seed=0"
    assert RunDir(run).is_complete()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["method"] == "fedavg" and cfg["rounds"] == 1
    assert [Path(s).name for s in cfg["meta"]["sources"]] == ["fed_synthetic.yaml"]
    assert cfg["meta"]["device"] == "cpu"
    capsys.readouterr()
    assert main(["table", str(out), "--metrics", "acc/all", "fed/personal_acc", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["method"] == "fedavg" and row["seeds"] == 1 and 0.0 <= row["acc/all"]["mean"] <= 1.0


def test_the_record_names_the_spec_and_source_relative_to_the_sweeps_directory(tmp_path):
    """A record committed to a repository (results/) names the spec as every clone has it."""
    from nclab.sweep.execute import _record

    spec, src = tmp_path / "configs" / "g.yaml", tmp_path / "results" / "g" / "m=ce" / "seed=0"
    p = _payload(tmp_path, spec=str(spec), source=str(src), cwd=str(tmp_path))
    _record(p)
    rec = json.loads((Path(p["dir"]) / "sweep.json").read_text())
    assert rec["spec"] == "configs/g.yaml" and rec["after"] == "results/g/m=ce/seed=0"
    _record({**p, "cwd": str(tmp_path / "elsewhere")})  # outside the working directory: as given
    rec = json.loads((Path(p["dir"]) / "sweep.json").read_text())
    assert rec["spec"] == str(spec) and rec["after"] == str(src)


def test_a_resumed_runs_cost_adds_its_sittings(tmp_path):
    """The record's wall seconds add over the sittings of a resumed run; the device is its config's."""
    from nclab.sweep.execute import _cost, _prior_cost, _record

    p = _payload(tmp_path, cpus=2)
    _record(p, {"seconds": 100.0, "cpus": 2, "gpus": 0, "device": "cpu"})
    prior = _prior_cost(Path(p["dir"]))
    assert prior == {"seconds": 100.0, "cpus": 2, "gpus": 0, "device": "cpu"}
    (Path(p["dir"]) / "config.yaml").write_text('seed: 0\nmeta:\n  device: "cuda (NVIDIA H200)"\n')
    cost = _cost(p, prior, 25.04)
    assert cost == {"seconds": 125.0, "cpus": 2, "gpus": 0, "device": "cuda (NVIDIA H200)"}
    (Path(p["dir"]) / "sweep.json").write_text("{not json")
    assert _prior_cost(Path(p["dir"])) is None and _cost(p, None, 3.0)["seconds"] == 3.0
