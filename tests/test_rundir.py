"""nclab.rundir: RunDir (each method), rows appended whole, torn last lines, atomic truncation, duplicates,
the run lock."""

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


def test_truncate_keeps_complete_rows_and_warns_about_a_torn_one(tmp_path):
    run = rundir.RunDir(tmp_path)
    for e in (1, 2, 3):
        run.append({"epoch": e})
    with open(run.metrics_path, "a") as fh:
        fh.write('{"epoch": 4')
    with pytest.warns(UserWarning, match="cut short"):
        run.truncate(lambda r: r["epoch"] <= 2)
    assert run.rows() == ([{"epoch": 1}, {"epoch": 2}], False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temporary left
    none = rundir.RunDir(tmp_path / "none")
    none.truncate(lambda r: True)  # a missing file stays missing
    assert not none.metrics_path.exists()


def test_duplicate_evaluations():
    rows = [
        {"epoch": 1},
        {"epoch": 2},
        {"epoch": 2, "stage": "crt"},
        {"epoch": 1},
        {"epoch": 2},
        {"epoch": 1},
    ]
    assert rundir.duplicate_evaluations(rows) == [(1, None), (2, None)]
    assert rundir.duplicate_evaluations(rows[:3]) == []


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / ".last.pt.tmp-12345"
    stale.write_bytes(b"half a checkpoint")
    keep = tmp_path / "checkpoints" / "last.pt"
    keep.write_bytes(b"x")
    assert rundir.RunDir(tmp_path).remove_stale_temporaries() == [stale]
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


# -- RunDir: the one contract ---------------------------------------------------------------------------
CLASSES = {"names": ["a", "b"], "counts": [5, 1]}


def _train_run(path, *, epochs=2, stage2="none"):
    run = rundir.RunDir(path)
    run.create(f"train: {{epochs: {epochs}}}\nstage2: {{method: {stage2}}}\n", CLASSES)
    return run


def test_rundir_construction_does_no_io(tmp_path):
    run = rundir.RunDir(tmp_path / "none")
    assert run.metrics_path == tmp_path / "none" / "metrics.jsonl"
    assert run.checkpoint_path == tmp_path / "none" / "checkpoints" / "last.pt"
    assert run.config_path.name == "config.yaml" and run.classes_path.name == "classes.json"
    assert run.geometry_dir.name == "geometry" and not (tmp_path / "none").exists()


def test_create_writes_the_static_files_and_refuses_an_existing_run(tmp_path):
    run = rundir.RunDir(tmp_path / "r")
    with run.lock() as lock:
        assert lock.held
        text = rundir.with_meta("seed: 1\n", {"nclab": "0.1", "counts": [5, 1]})
        run.create(text, CLASSES, {"clients.json": {"clients": [{"client": 0}]}})
        assert run.config_path.read_text() == 'seed: 1\nmeta:\n  nclab: "0.1"\n  counts: [5, 1]\n'
        assert json.loads(run.classes_path.read_text()) == CLASSES
        assert run.read_json("clients.json") == {"clients": [{"client": 0}]}
        assert (run.path / "checkpoints").is_dir() and run.geometry_dir.is_dir()
        assert run.config().meta.counts == [5, 1] and run.classes() == CLASSES
        run.append({"epoch": 1})
        with pytest.raises(NclabError, match=f"{run.path} already holds a run: use --resume"):
            run.create("seed: 2\n", CLASSES)
    assert run.config().seed == 1  # untouched


def test_append_nan_is_null_and_rows_report_a_torn_line(tmp_path):
    run = _train_run(tmp_path)
    run.append({"epoch": 1, "nc/nc1": float("nan"), "acc/per_class": [float("inf"), 0.5]})
    assert run.metrics_path.read_text() == '{"epoch": 1, "nc/nc1": null, "acc/per_class": [null, 0.5]}\n'
    with open(run.metrics_path, "a") as fh:
        fh.write('{"epoch": 2, "ac')
    assert run.rows() == ([{"epoch": 1, "nc/nc1": None, "acc/per_class": [None, 0.5]}], True)
    with pytest.warns(UserWarning, match="cut short"):
        run.truncate(lambda r: True)
    assert run.rows() == ([{"epoch": 1, "nc/nc1": None, "acc/per_class": [None, 0.5]}], False)


def test_truncate_keeps_the_rows_the_checkpoint_covers(tmp_path):
    run = _train_run(tmp_path, epochs=3)
    for e in (1, 2, 3):
        run.append({"epoch": e})
    run.truncate(lambda r: r["epoch"] <= 1)
    assert run.rows() == ([{"epoch": 1}], False) and not run.is_complete()


def test_checkpoints_are_atomic_and_loaded_safely(tmp_path):
    import torch

    run = _train_run(tmp_path)
    run.save_checkpoint({"epoch": 1, "w": torch.arange(3.0)})
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["last.pt"]  # no temporary
    state = run.load_checkpoint(required=("epoch",))
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(3.0))
    with pytest.raises(DataError, match="lacks"):
        run.load_checkpoint(required=("epoch", "params"))
    with pytest.raises(TypeError, match="numpy"):  # could not be loaded back safely: refused on save
        import numpy as np

        run.save_checkpoint({"rng": np.random.default_rng(0)})
    assert run.load_checkpoint()["epoch"] == 1  # the earlier checkpoint is intact
    run.checkpoint_path.write_bytes(run.checkpoint_path.read_bytes()[:50])  # damaged afterwards
    with pytest.raises(DataError, match="not a readable checkpoint"):
        run.load_checkpoint()
    with pytest.raises(DataError, match="does not exist"):
        rundir.RunDir(tmp_path / "none").load_checkpoint()


def test_geometry_round_trip_and_unsafe_files_are_reported_not_loaded(tmp_path):
    import numpy as np

    run = _train_run(tmp_path)
    run.write_geometry(1, means=np.eye(2), counts=np.array([5, 1]))
    run.write_geometry(2, stage="crt", means=np.zeros((2, 2)))
    assert sorted(p.name for p in run.geometry_dir.iterdir()) == ["1.npz", "2_crt.npz"]
    np.savez(run.geometry_dir / "3.npz", means=np.array([{"x": 1}], dtype=object))  # needs pickle
    (run.geometry_dir / "4.npz").write_bytes(b"not a zip")
    problems: list[str] = []
    with pytest.warns(rundir.RunDirWarning, match="unreadable"):
        geometry = run.geometry(problems)
    assert list(geometry) == [1] and np.array_equal(geometry[1]["means"], np.eye(2))
    assert len(problems) == 2 and "3.npz" in problems[0] and "4.npz" in problems[1]


def test_completeness_against_the_runs_own_budget(tmp_path):
    plain, s2 = _train_run(tmp_path / "plain"), _train_run(tmp_path / "s2", stage2="crt")
    assert plain.budget() == {"kind": "train", "epoch": 2, "stage2": False}
    for run in (plain, s2):
        run.append({"epoch": 1})
        assert not run.is_complete()
        run.append({"epoch": 2})
    assert plain.is_complete() and not s2.is_complete()
    s2.append({"epoch": 2, "stage": "crt"})
    assert s2.is_complete() and not s2.is_diverged()
    fed = rundir.RunDir(tmp_path / "fed")
    fed.create("rounds: 2\n", CLASSES)
    fed.append({"epoch": 2, "round": 2})
    assert fed.budget() == {"kind": "fed", "round": 2} and fed.is_complete()
    bad = _train_run(tmp_path / "bad")
    bad.append({"epoch": 1, "diverged": True})
    assert bad.is_diverged() and not bad.is_complete()
    bad.config_path.write_text("train: [1, 2\n")  # corrupt: not complete, no exception
    assert not bad.is_complete() and not rundir.RunDir(tmp_path / "none").is_complete()


def test_config_and_classes_errors_are_clear(tmp_path):
    run = rundir.RunDir(tmp_path)
    with pytest.raises(DataError, match="config.yaml does not exist"):
        run.config()
    with pytest.raises(DataError, match="classes.json does not exist"):
        run.classes()
    run.config_path.write_text("- a list\n")
    with pytest.raises(DataError, match="not a readable config"):
        run.config()
    run.classes_path.write_text('{"counts": ["x"]}')
    with pytest.raises(DataError, match="classes.json is unreadable"):
        run.classes()
    run.classes_path.write_text('{"counts": [3, 1]}')  # names default to the class indices
    assert run.classes() == {"names": ["0", "1"], "counts": [3, 1]}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("optim: {weight_decay: 0.001, head_weight_decay: 0.01}\n", (0.01, 0.001)),
        ("optim: {weight_decay: 0.001}\n", (0.001, 0.001)),
        ("optim: {weight_decay: 0.001, head_weight_decay: null}\n", (0.001, 0.001)),
        ("rounds: 3\nweight_decay: 0.0005\n", (0.0005, 0.0005)),  # federated, flat (earlier layout)
        ("rounds: 3\nlocal: {weight_decay: 0.0002, epochs: 1}\n", (0.0002, 0.0002)),  # federated, nested
        ("train: {epochs: 1}\n", (None, None)),
    ],
)
def test_weight_decays_of_train_and_federated_configs(tmp_path, text, expected):
    run = rundir.RunDir(tmp_path)
    assert run.weight_decays() == (None, None)  # no config.yaml
    run.config_path.write_text(text)
    assert run.weight_decays() == expected


def test_stale_geometry_temporaries_are_removed(tmp_path):
    run = _train_run(tmp_path)
    stale = run.geometry_dir / ".1.npz.tmp-999"
    stale.write_bytes(b"half")
    assert run.remove_stale_temporaries() == [stale] and not stale.exists()
