"""`nclab sweep` runs a grid: failures do not stop it, `after` starts from a finished run, a second
invocation trains only what is missing (also after a kill), and `nclab table` agrees with the runs'
metrics.jsonl computed by hand."""

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nclab.cli import main
from nclab.rundir import is_complete, read_rows

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "recipes" / "synthetic.yaml"
METHODS = ROOT / "configs" / "methods"

# ce and la train; `broken` passes the schema but fails at data setup (a validation split that leaves no
# training sample); crt re-trains the classifier on the ce run's backbone
SPEC = f"""
base: [{RECIPE}]
overrides: [train.epochs=2, train.nc_every=1000, data.val_fraction=0.2]
axes:
  method:
    ce: [{METHODS / "ce.yaml"}]
    broken: [data.val_fraction=0.95]
    crt: {{from: {{method: ce}}, overrides: [stage2.method=crt, stage2.epochs=1]}}
seeds: [0, 1]
"""
TIMING = ("wall_time", "time", "elapsed", "seconds", "throughput")


def _files(d: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(d)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _metrics(d: Path) -> list[dict]:
    rows, torn = read_rows(d / "metrics.jsonl")
    assert not torn
    return [{k: v for k, v in r.items() if not any(t in k for t in TIMING)} for r in rows]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp / "out"
    rc = main(["sweep", str(spec), "--out", str(out), "--jobs", "2"])
    return spec, out, rc


def test_a_failing_run_does_not_stop_the_sweep(grid, capsys):
    _, out, rc = grid
    assert rc == 1  # not every run finished
    for s in (0, 1):
        assert is_complete(out / "method=ce" / f"seed={s}")
        assert is_complete(out / "method=crt" / f"seed={s}")
        assert not is_complete(out / "method=broken" / f"seed={s}")
        log = out / "method=broken" / f"seed={s}.log"
        assert "val_fraction" in log.read_text()


def test_after_starts_from_the_finished_run(grid):
    _, out, _ = grid
    ce, crt = out / "method=ce" / "seed=0", out / "method=crt" / "seed=0"
    rec = json.loads((crt / "sweep.json").read_text())
    assert rec["axes"] == {"method": "crt"} and rec["seed"] == 0 and rec["after"] == str(ce.resolve())
    a, b = _metrics(ce), _metrics(crt)
    assert b[: len(a)] == a  # the backbone's rows, copied
    assert len(b) == len(a) + 1 and b[-1]["stage"] == "crt" or b[-1].get("stage")
    cfg = (crt / "config.yaml").read_text()
    assert "method: crt" in cfg and "after:" in cfg and "method: none" not in cfg


def test_rerun_trains_only_what_is_missing(grid):
    spec, out, _ = grid
    done = [out / f"method={m}" / f"seed={s}" for m in ("ce", "crt") for s in (0, 1)]
    before = {d: _files(d) for d in done}
    time.sleep(0.01)
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "2"]) == 1  # broken fails again
    assert {d: _files(d) for d in done} == before


def test_table_json_equals_the_runs_by_hand(grid, capsys):
    _, out, _ = grid
    keys = ["acc/all", "acc/few", "nc/nc1", "val/balanced_acc"]
    assert main(["table", str(out), "--metrics", *keys, "--format", "json"]) == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"ce", "crt"}  # broken has no complete run
    for m in ("ce", "crt"):
        last = [json.loads((out / f"method={m}" / f"seed={s}" / "metrics.jsonl").read_text().splitlines()[-1])
                for s in (0, 1)]  # fmt: skip
        assert rows[m]["seeds"] == 2
        for k in keys:
            vals = [r[k] for r in last if r.get(k) is not None]
            if not vals:
                assert rows[m][k] is None
                continue
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
            assert rows[m][k]["n"] == len(vals)
            assert rows[m][k]["mean"] == pytest.approx(mean, rel=1e-12)
            assert rows[m][k]["std"] == (None if std is None else pytest.approx(std, rel=1e-12))
    # paired differences and the Markdown block
    assert (
        main(["table", str(out), "--metrics", "acc/all", "--paired-against", "method=ce", "--format", "json"])
        == 0
    )
    paired = [r for r in json.loads(capsys.readouterr().out) if r.get("paired_against")]
    assert [r["method"] for r in paired] == ["crt"] and paired[0]["pairs"] == 2
    doc = out.parent / "doc.md"
    doc.write_text("# t\n\n<!-- grid:begin -->\nold\n<!-- grid:end -->\n\ntail\n")
    assert main(["table", str(out), "--out", str(doc), "--block", "grid"]) == 0
    text = doc.read_text()
    assert "old" not in text and "| method | seeds | acc/all (%)" in text and text.endswith("tail\n")
    assert main(["table", str(out), "--group-by", "methd"]) == 2


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
    assert is_complete(a)
    if is_complete(b):
        pytest.skip(f"the second run finished before the kill: {sorted(os.listdir(b))} {p.returncode}")
    before = _files(a)
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    assert _files(a) == before
    assert "--resume" in (out / "copy=b" / "seed=0.log").read_text()
    assert _metrics(b) == _metrics(a)


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
    assert is_complete(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["method"] == "fedavg" and cfg["rounds"] == 1
    assert [Path(s).name for s in cfg["meta"]["sources"]] == ["fed_synthetic.yaml"]
    capsys.readouterr()
    assert main(["table", str(out), "--metrics", "acc/all", "fed/personal_acc", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["method"] == "fedavg" and row["seeds"] == 1 and 0.0 <= row["acc/all"]["mean"] <= 1.0
