"""nclab.rundir: rows appended whole, torn last lines, atomic truncation, duplicates, the run lock."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from nclab import rundir
from nclab.errors import DataError, NclabError
from tests.conftest import cli_env


def test_append_row_writes_one_complete_line_with_null_for_non_finite(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rundir.append_row(path, {"epoch": 1, "nc/nc1": float("nan"), "per_class": [1.0, float("inf")]})
    rundir.append_row(path, {"epoch": 2, "x": -math.inf})
    text = path.read_text()
    assert text.count("\n") == 2 and text.endswith("\n") and "NaN" not in text and "Infinity" not in text
    rows, torn = rundir.read_rows(path)
    assert not torn
    assert rows == [{"epoch": 1, "nc/nc1": None, "per_class": [1.0, None]}, {"epoch": 2, "x": None}]


def test_a_torn_final_line_is_reported_not_raised(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rundir.append_row(path, {"epoch": 1})
    with open(path, "a") as fh:
        fh.write('{"epoch": 2, "acc/al')  # the write a crash cut short
    rows, torn = rundir.read_rows(path)
    assert rows == [{"epoch": 1}] and torn


def test_a_bad_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2, "ac\n{"epoch": 3}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl line 2"):
        rundir.read_rows(path)
    path.write_text('{"epoch": 1}\n[1, 2]\n')  # complete line, but not a row
    with pytest.raises(DataError, match="line 2"):
        rundir.read_rows(path)


def test_truncate_rows_keeps_complete_rows_and_warns_about_a_torn_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for e in (1, 2, 3):
        rundir.append_row(path, {"epoch": e})
    with open(path, "a") as fh:
        fh.write('{"epoch": 4')
    with pytest.warns(UserWarning, match="cut short"):
        rundir.truncate_rows(path, lambda r: r["epoch"] <= 2)
    assert rundir.read_rows(path) == ([{"epoch": 1}, {"epoch": 2}], False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temporary left
    rundir.truncate_rows(tmp_path / "none.jsonl", lambda r: True)  # a missing file stays missing
    assert not (tmp_path / "none.jsonl").exists()


def test_duplicate_evaluations():
    rows = [{"epoch": 1}, {"epoch": 2}, {"epoch": 2, "stage": "crt"}, {"epoch": 1}, {"epoch": 2}, {"epoch": 1}]
    assert rundir.duplicate_evaluations(rows) == [(1, None), (2, None)]
    assert rundir.duplicate_evaluations(rows[:3]) == []


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / ".last.pt.tmp-12345"
    stale.write_bytes(b"half a checkpoint")
    keep = tmp_path / "checkpoints" / "last.pt"
    keep.write_bytes(b"x")
    assert rundir.remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and keep.exists()


def test_run_lock_in_one_process(tmp_path):
    with rundir.RunLock(tmp_path / "run") as lock:
        assert lock.held
        assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(rundir.RunLockedError, match=f"in use by process {os.getpid()}"):
            rundir.RunLock(tmp_path / "run").acquire()
    assert not lock.held
    rundir.RunLock(tmp_path / "run").acquire().release()  # free again


HOLD = "import sys, time; from nclab.rundir import RunLock; lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"


def test_run_lock_names_another_process_and_dies_with_it(tmp_path):
    """The attack: a second writer while a process holds the directory; then the holder is killed -9."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=cli_env()
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(NclabError, match=f"in use by process {holder.pid}.*another --run-dir"):
            rundir.RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel drops a dead holder's lock: never stale
        try:
            rundir.RunLock(tmp_path).acquire().release()
            break
        except NclabError:
            assert time.time() < deadline, "the lock outlived its holder"
            time.sleep(0.05)


def test_rows_are_json_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    rundir.append_row(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}


def test_table_warns_about_duplicated_evaluations(tmp_path, capsys):
    from nclab.cli import main

    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("train: {epochs: 2, seed: 0}\n")
    for e in (1, 2, 1, 2):  # what two writers leave
        rundir.append_row(run / "metrics.jsonl", {"epoch": e, "acc/all": 0.5})
    assert main(["table", str(run)]) == 0
    assert "2 evaluation(s) more than once" in capsys.readouterr().err
