"""nclab.sweep.engine: the payload a worker gets, the scheduling order (sources first, a run after a
failed source fails without running), an unknown engine, the summary line by hand (a grid that trains:
test_sweep.py)."""

import json

import pytest

from tests.sweep.helpers import RECIPE, ROOT

METHODS = ROOT / "configs" / "methods"
SPEC = f"""
base: [{RECIPE}]
overrides: [train.epochs=2]
axes:
  method:
    ce: [{METHODS / "ce.yaml"}]
    crt: {{from: {{method: ce}}, overrides: [stage2.method=crt, stage2.epochs=1]}}
seeds: [0, 1]
"""


def _spec_runs(tmp_path):
    from nclab.sweep import expand, load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    s = load_spec(spec)
    return s, expand(s, tmp_path / "out")


def test_payload_is_the_plain_description_of_a_run(tmp_path, monkeypatch):
    from nclab.sweep.engine import payload

    monkeypatch.chdir(tmp_path)
    spec, runs = _spec_runs(tmp_path)
    ce = next(r for r in runs if r.axes == {"method": "ce"} and r.seed == 1)
    crt = next(r for r in runs if r.axes == {"method": "crt"} and r.seed == 1)
    p = payload(ce, spec)
    assert p["label"] == "method=ce/seed=1" and p["command"] == "train" and p["seed"] == 1
    assert p["dir"] == str((tmp_path / "out" / "method=ce" / "seed=1").resolve())
    assert p["log"] == str((tmp_path / "out" / "method=ce" / "seed=1.log").resolve())
    assert p["files"] == [str(RECIPE), str(METHODS / "ce.yaml")] and p["source"] is None
    assert "train.seed=1" in p["overrides"] and p["cwd"] == str(tmp_path) and p["cpus"] >= 1
    assert payload(crt, spec)["source"] == p["dir"]
    json.dumps(p)  # plain: it travels to a thread or a Ray task


def test_run_sweep_orders_sources_first_and_fails_runs_after_a_failed_source(tmp_path, monkeypatch):
    from nclab.sweep import engine

    spec, runs = _spec_runs(tmp_path)
    seen = []

    def fake_execute(p):
        seen.append(p["label"])
        ok = not (p["label"] == "method=ce/seed=1")  # the seed-1 backbone fails
        return {"label": p["label"], "status": "ok" if ok else "failed", "rc": 0 if ok else 1,
                "seconds": 1.0, "reason": "" if ok else "exit code 1"}  # fmt: skip

    monkeypatch.setattr(engine, "execute", fake_execute)
    got = []
    results = engine.run_sweep(runs, spec, jobs=1, progress=False, on_result=got.append)
    labels = [r.label for r in runs]
    assert [r["label"] for r in results] == labels  # in the runs' order
    assert "method=crt/seed=1" not in seen  # never started: its source failed
    assert seen.index("method=ce/seed=0") < seen.index("method=crt/seed=0")
    by = {r["label"]: r for r in results}
    assert by["method=crt/seed=1"]["status"] == "failed"
    assert by["method=crt/seed=1"]["reason"] == "its source method=ce/seed=1 failed"
    assert by["method=crt/seed=0"]["status"] == "ok" and by["method=crt/seed=0"]["dir"] == str(
        runs[0].dir.parent.parent / "method=crt" / "seed=0"
    )
    assert len(got) == len(seen)  # on_result: every executed run


def test_an_unknown_engine_is_an_error(tmp_path):
    from nclab.errors import NclabError
    from nclab.sweep import run_sweep

    spec, runs = _spec_runs(tmp_path)
    with pytest.raises(NclabError, match="local or ray"):
        run_sweep(runs, spec, engine="slurm")


def test_summary_by_hand():
    from nclab.sweep import summary

    res = [
        {"label": "a", "status": "ok"},
        {"label": "b", "status": "skipped"},
        {"label": "c", "status": "failed", "reason": "exit code 2", "log": "c.log"},
        {"label": "d", "status": "diverged"},
        {"label": "e", "status": "ok"},
    ]
    assert summary(res) == (
        "5 runs: 2 trained, 1 already complete, 1 diverged, 1 failed\n  failed c: exit code 2; log: c.log"
    )
    assert summary([]) == "0 runs: 0 trained, 0 already complete, 0 diverged, 0 failed"


DRIVER = """
import sys
from nclab.sweep import execute as ex, engine, expand, load_spec

child = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)"
ex.command_line = lambda p, action: [sys.executable, "-c", child, sys.argv[3]]
spec = load_spec(sys.argv[1])
engine.run_sweep(expand(spec, sys.argv[2])[:1], spec)
"""


def test_sigterm_stops_the_runs_a_local_sweep_started(tmp_path):
    """`kill PID` of a sweep stops its training children too (they resume on the next sweep), rather
    than leaving them to train unwatched into the run directories."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec, _ = _spec_runs(tmp_path)
    pidfile = tmp_path / "child.pid"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(spec.path), str(tmp_path / "out"), str(pidfile)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while not (pidfile.is_file() and pidfile.read_text()) and time.time() < deadline:
            assert driver.poll() is None, driver.stderr.read()
            time.sleep(0.1)
        child = int(pidfile.read_text())
        driver.send_signal(signal.SIGTERM)
        rc = driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert rc != 0 and "KeyboardInterrupt" in driver.stderr.read()
    try:
        os.kill(child, 0)
    except ProcessLookupError:
        return  # stopped and reaped by the sweep before it exited
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the sweep exited and left its run training")
