"""Trust (issue #16), written as attacks on a run directory: a checkpoint that runs code, two writers,
a torn last row, damaged files, and what a failed or killed run leaves behind (docs/reliability.md)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nclab import checkpoint as ckpt
from nclab import rundir
from nclab.cli import main
from nclab.train import Trainer, load_config
from tests.conftest import cli_env

SMOKE = """\
data: {name: synthetic, num_classes: 6, n_max: 120, imbalance: 20, dim: 16, test_per_class: 30}
model: {name: mlp, feature_dim: 16}
head: {name: linear}
loss: {name: ce}
optim: {name: sgd, lr: 0.05, weight_decay: 5e-4}
sched: {kind: cosine, warmup_epochs: 1}
train: {epochs: 3, batch_size: 32, seed: 0}
"""


@pytest.fixture
def smoke(tmp_path):
    p = tmp_path / "smoke.yaml"
    p.write_text(SMOKE)
    return p


def _rows(run_dir):
    return [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _started(cfg_path, run_dir, *over):
    """A run directory as ``nclab train`` leaves it before the first epoch (lock released)."""
    t = Trainer(load_config(cfg_path, list(over)), run_dir)
    t._checkpoint()
    t.close()
    return run_dir


class _Payload:
    """Unpickling this object creates a file: what a crafted checkpoint would do."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


# -- 1. a checkpoint cannot run code ---------------------------------------------------------------
def test_a_checkpoint_that_would_run_code_is_refused(smoke, tmp_path, capsys):
    run = _started(smoke, tmp_path / "r")
    pwned = tmp_path / "pwned"
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["hooks"] = [_Payload(pwned)]
    torch.save(state, run / "checkpoints" / "last.pt")
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "cannot be loaded safely" in err and "tampered" in err and len(err.strip().splitlines()) == 1
    assert not pwned.exists()


def test_checkpoints_hold_only_safe_types(smoke, tmp_path):
    run = _started(smoke, tmp_path / "r", "align.strategies=[reg,slerp]", "train.nc_source=online")
    ckpt.check_safe(torch.load(run / "checkpoints" / "last.pt", weights_only=True))
    with pytest.raises(TypeError, match="numpy.*convert"):
        import numpy as np

        ckpt.save_atomic({"rng": np.random.default_rng(0)}, tmp_path / "x.pt")
    assert not list(tmp_path.glob(".x.pt.tmp-*")) and not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "not_a_dict", "wrong_kind"])
def test_a_damaged_checkpoint_is_a_clear_error(smoke, tmp_path, capsys, damage):
    run = _started(smoke, tmp_path / "r")
    last = run / "checkpoints" / "last.pt"
    data = last.read_bytes()
    if damage == "empty":
        last.write_bytes(b"")
    elif damage == "truncated":
        last.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        last.write_bytes(b"\x80\x04 not a checkpoint" * 10)
    elif damage == "not_a_dict":
        torch.save([torch.zeros(1)], last)
    else:  # a federated checkpoint where a training one belongs
        torch.save({"round": 1, "params": [torch.zeros(1)]}, last)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(last) in err and len(err.splitlines()) == 1
    assert {"empty": "empty", "truncated": "truncated", "garbage": "truncated", "not_a_dict": "not a dict",
            "wrong_kind": "lacks"}[damage] in err  # fmt: skip


# -- 2. one writer ------------------------------------------------------------------------------
def test_a_second_writer_exits_2_naming_the_holder(smoke, tmp_path, capsys):
    run = tmp_path / "r"
    with rundir.RunLock(run):  # another nclab process holds the directory
        assert main(["train", str(smoke), "--run-dir", str(run)]) == 2
        assert f"in use by process {os.getpid()}" in capsys.readouterr().err
        assert not (run / "metrics.jsonl").exists() and not (run / "config.yaml").exists()
        assert main(["train", "--resume", str(run)]) == 2  # resume too
    assert main(["train", str(smoke), "train.epochs=1", "--run-dir", str(run)]) == 0  # released


@pytest.mark.slow
def test_two_concurrent_runs_one_exits_2_the_other_writes_each_evaluation_once(smoke, tmp_path):
    run = tmp_path / "r"
    cmd = [sys.executable, "-m", "nclab", "train", str(smoke), "train.epochs=60", "train.nc_tracking=false"]
    procs = [
        subprocess.Popen([*cmd, "--run-dir", str(run)], env=cli_env(), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], errs
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    # the loser names the winner's PID (or, if it started after the winner finished, the finished run)
    assert f"process {procs[winner].pid}" in errs[loser] or "already holds a run" in errs[loser], errs[loser]
    epochs = [r["epoch"] for r in _rows(run)]
    assert epochs == list(range(1, 61))
    assert rundir.duplicate_evaluations(_rows(run)) == []


# -- 3. a torn last row ----------------------------------------------------------------------------
class _Crash(Exception):
    pass


def test_a_torn_last_row_then_resume_matches_an_uninterrupted_run(smoke, tmp_path, monkeypatch):
    cfg = load_config(smoke)
    Trainer(cfg, tmp_path / "full").fit()
    part = tmp_path / "part"
    save = Trainer._checkpoint

    def crash_after_epoch_2(self):
        save(self)
        if self.epoch == 2:
            raise _Crash

    monkeypatch.setattr(Trainer, "_checkpoint", crash_after_epoch_2)
    with pytest.raises(_Crash):  # killed after epoch 2's checkpoint...
        Trainer(load_config(smoke), part).fit()
    monkeypatch.undo()
    with open(part / "metrics.jsonl", "a") as fh:  # ... while writing epoch 3's row
        fh.write('{"epoch": 3, "step": 24, "acc/all": 0.4')
    (part / "checkpoints" / ".last.pt.tmp-999999").write_bytes(b"half")  # and a checkpoint write
    with pytest.warns(UserWarning, match="cut short"):
        assert main(["train", "--resume", str(part)]) == 0
    assert _rows(part) == _rows(tmp_path / "full")
    assert not list((part / "checkpoints").glob(".*tmp*"))


def test_report_draws_the_complete_rows_of_a_torn_file_and_says_so(tmp_path):
    from nclab.report.rundir import RunDirWarning, load_run

    run = tmp_path / "r"
    run.mkdir()
    (run / "classes.json").write_text(json.dumps({"names": ["a", "b"], "counts": [5, 1]}))
    for e in (1, 2):
        rundir.append_row(run / "metrics.jsonl", {"epoch": e, "acc/all": 0.5})
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "acc/')
    with pytest.warns(RunDirWarning, match="torn"):
        r = load_run(run)
    assert [x["epoch"] for x in r.rows] == [1, 2] and "torn" in r.problems[0]
    rows = [{"epoch": e, "acc/all": 0.5} for e in (1, 2, 1, 2)]  # two writers
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    with pytest.warns(RunDirWarning, match="more than once.*epoch 1"):
        load_run(run)


# -- 5. clear errors for damaged run files ----------------------------------------------------------
@pytest.mark.parametrize("text", ["data: {name: [unclosed\n", "- just\n- a list\n", ""])
def test_a_corrupt_config_yaml_on_resume_is_a_clear_error(smoke, tmp_path, capsys, text):
    run = _started(smoke, tmp_path / "r")
    (run / "config.yaml").write_text(text)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{run / 'config.yaml'}" in err and "restore it" in err and len(err.splitlines()) == 1


def test_a_config_the_schema_rejects_on_resume_names_the_file(smoke, tmp_path, capsys):
    run = _started(smoke, tmp_path / "r")
    (run / "config.yaml").write_text(SMOKE.replace("epochs: 3", "epochz: 3"))
    assert main(["train", "--resume", str(run)]) == 2
    assert f"cannot resume from {run / 'config.yaml'}" in capsys.readouterr().err


def test_a_checkpoint_that_does_not_fit_the_model_is_a_clear_error(smoke, tmp_path, capsys):
    run = _started(smoke, tmp_path / "r")
    assert main(["train", "--resume", str(run), "model.feature_dim=32"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit the model" in err and len(err.splitlines()) == 1


# -- 7. nothing left behind ------------------------------------------------------------------------
def test_a_failed_resume_leaves_nothing_in_the_run_directory(smoke, tmp_path):
    run = _started(smoke, tmp_path / "r")
    before = sorted(p.name for p in run.rglob("*"))
    assert main(["train", "--resume", str(run), "train.epochz=3"]) == 2  # a bad override
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    assert main(["train", "--resume", str(run)]) == 2  # a bad checkpoint
    assert sorted(p.name for p in run.rglob("*")) == before
    assert not (run / ".resume_config.yaml").exists()


@pytest.mark.slow
def test_a_killed_run_is_resumed_although_it_held_the_lock(smoke, tmp_path):
    run = tmp_path / "r"
    args = [str(smoke), "train.epochs=200", "train.nc_tracking=false"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nclab", "train", *args, "--run-dir", str(run)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.pt").is_file() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = subprocess.run(
        [sys.executable, "-m", "nclab", "train", "--resume", str(run)],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert [x["epoch"] for x in _rows(run)] == list(range(1, 201))
