"""Trust (issue #16) for federated run directories, written as attacks: a code-running checkpoint, a
second writer, a torn last row, damaged run files, and a killed driver's Ray processes
(docs/reliability.md; the watchdog itself: tests/test_raywatch.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nclab import rundir
from nclab.cli import main
from nclab.fed.config import load_fed_config
from nclab.fed.runner import FedRun
from tests.conftest import cli_env
from tests.test_raywatch import alive as _alive

ROOT = Path(__file__).resolve().parents[2]
SMOKE = """\
method: fedavg
rounds: 2
clients_per_round: 2
data: {name: synthetic, num_classes: 4, n_max: 60, test_per_class: 20, dim: 16}
partition: {kind: pcdd, num_clients: 2, classes_per_client: 2}
model: {name: mlp, feature_dim: 8}
local: {batch_size: 32}
nc_samples: 400
"""


@pytest.fixture
def smoke(tmp_path):
    p = tmp_path / "fed.yaml"
    p.write_text(SMOKE)
    return p


@pytest.fixture
def _workers_import_nclab(monkeypatch):
    src = str(ROOT / "src")
    monkeypatch.setenv("PYTHONPATH", src + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _started(cfg_path, run_dir, rounds_done=0):
    """A federated run directory after ``rounds_done`` rounds (rows and checkpoint, no simulation)."""
    cfg = load_fed_config(cfg_path)
    cfg.run_dir = str(run_dir)
    run = FedRun(cfg, run_dir)
    params = [torch.from_numpy(p.copy()) for p in run.initial_state()]
    for r in range(1, rounds_done + 1):
        rundir.append_row(run_dir / "metrics.jsonl", {"epoch": r, "round": r, "acc/all": 0.5})
    from nclab.checkpoint import save_atomic

    save_atomic({"round": rounds_done, "params": params}, run.run.checkpoint_path)
    run.close()
    return run_dir


def test_a_fed_checkpoint_that_would_run_code_is_refused(smoke, tmp_path, capsys):
    run = _started(smoke, tmp_path / "r", 1)
    pwned = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(pwned), "w"))

    torch.save({"round": 1, "params": [Payload()]}, run / "checkpoints" / "last.pt")
    assert main(["fed", "--resume", str(run)]) == 2
    assert "cannot be loaded safely" in capsys.readouterr().err
    assert not pwned.exists()


def test_a_second_fed_writer_exits_2_naming_the_holder(smoke, tmp_path, capsys):
    run = tmp_path / "r"
    with rundir.RunLock(run):
        assert main(["fed", str(smoke), "--run-dir", str(run)]) == 2
        assert f"in use by process {os.getpid()}" in capsys.readouterr().err
        assert not (run / "config.yaml").exists()


def test_a_torn_last_row_is_dropped_on_fed_resume(smoke, tmp_path):
    run = _started(smoke, tmp_path / "r", 2)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "round": 3, "acc/al')
    # rows 1, 2 complete; round 3 torn; the checkpoint says 2 rounds are done
    cfg = load_fed_config(run / "config.yaml")
    with pytest.warns(UserWarning, match="cut short"):
        fr = FedRun(cfg, run, resume=True)
    fr.close()
    assert fr.done_rounds == 2
    assert rundir.read_rows(run / "metrics.jsonl") == (
        [{"epoch": 1, "round": 1, "acc/all": 0.5}, {"epoch": 2, "round": 2, "acc/all": 0.5}],
        False,
    )


@pytest.mark.parametrize(
    "name,text,msg",
    [
        ("config.yaml", "rounds: [unclosed\n", "config.yaml is not a readable config"),
        ("clients.json", '{"clients": [{"client": 0, "num_sa', "clients.json is unreadable"),
        ("clients.json", '{"clients": []}', "partition the config builds differs"),
    ],
)
def test_damaged_fed_run_files_on_resume_are_clear_errors(smoke, tmp_path, capsys, name, text, msg):
    run = _started(smoke, tmp_path / "r", 1)
    (run / name).write_text(text)
    assert main(["fed", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.usefixtures("_workers_import_nclab")
def test_kill_9_of_nclab_fed_leaves_no_ray_process_and_resumes_exactly(tmp_path):
    """Killed after its first round or later, resumed for one more: the rows of an uninterrupted run."""
    pytest.importorskip("flwr")
    from tests.fed.test_runner import SMOKE as RECIPE
    from tests.fed.test_runner import in_process, rows

    run = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nclab", "fed", str(RECIPE), "rounds=40", "--run-dir", str(run)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 900  # Ray's start-up on a loaded 2-core machine took over 300 s once
    ckpt = run / "checkpoints" / "last.pt"  # written just after its round's row: both are there
    while not ckpt.is_file():
        assert time.time() < deadline and proc.poll() is None, "the simulation never got going"
        time.sleep(0.2)
    recorded = {int(p): t for p, t in json.loads((run / ".simulation.pids").read_text()).items()}
    assert len(recorded) >= 3  # GCS, raylet, agents, actors
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while [p for p in recorded if _alive(p)]:
        assert time.time() < deadline, (
            f"Ray processes outlived the driver: {[p for p in recorded if _alive(p)]}"
        )
        time.sleep(0.2)
    done = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["round"]
    assert main(["fed", "--resume", str(run), f"rounds={done + 1}"]) == 0  # in process: no second start-up
    ref = in_process(load_fed_config(RECIPE, [f"rounds={done + 1}"]), tmp_path / "ref")
    assert [r["round"] for r in rows(run)] == list(range(1, done + 2)) and rows(run) == rows(ref)
