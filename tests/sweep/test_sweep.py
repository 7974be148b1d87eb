"""`nclab sweep` end to end (engine, execute and the command together): a grid where failures do not stop
it, `after` starts from a finished run, a second invocation trains only what is missing, and `nclab table`
agrees with the runs' metrics.jsonl computed by hand. The modules' own tests: test_engine.py,
test_execute.py, tests/commands/test_sweep.py."""

import json
import math
import time

import pytest

from nclab.cli import main
from nclab.rundir import RunDir
from tests.sweep.helpers import RECIPE, ROOT, files_of
from tests.sweep.helpers import metrics_of as _metrics  # also imported by test_ray.py

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
        assert RunDir(out / "method=ce" / f"seed={s}").is_complete()
        assert RunDir(out / "method=crt" / f"seed={s}").is_complete()
        assert not RunDir(out / "method=broken" / f"seed={s}").is_complete()
        log = out / "method=broken" / f"seed={s}.log"
        assert "val_fraction" in log.read_text()


def test_after_starts_from_the_finished_run(grid):
    _, out, _ = grid
    ce, crt = out / "method=ce" / "seed=0", out / "method=crt" / "seed=0"
    rec = json.loads((crt / "sweep.json").read_text())
    assert rec["axes"] == {"method": "crt"} and rec["seed"] == 0 and rec["after"] == str(ce.resolve())
    for d in (ce, crt):  # where it ran and its wall time, for the grid's measured cost
        cost = json.loads((d / "sweep.json").read_text())["cost"]
        assert cost["device"] == "cpu" and cost["cpus"] == 1 and cost["gpus"] == 0 and cost["seconds"] > 0
    a, b = _metrics(ce), _metrics(crt)
    assert b[: len(a)] == a  # the backbone's rows, copied
    assert len(b) == len(a) + 1 and b[-1]["stage"] == "crt" or b[-1].get("stage")
    cfg = (crt / "config.yaml").read_text()
    assert "method: crt" in cfg and "after:" in cfg and "method: none" not in cfg


def test_rerun_trains_only_what_is_missing(grid):
    spec, out, _ = grid
    done = [out / f"method={m}" / f"seed={s}" for m in ("ce", "crt") for s in (0, 1)]
    before = {d: files_of(d) for d in done}
    time.sleep(0.01)
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "2"]) == 1  # broken fails again
    assert {d: files_of(d) for d in done} == before


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
