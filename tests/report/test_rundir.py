"""nclab.report.rundir.load_run: a run directory read through RunDir into a Run (hand-written runs)."""

import numpy as np
import pytest

from nclab.errors import DataError
from nclab.report.rundir import RunDirWarning, load_run
from nclab.rundir import RunDir

CLASSES = {"names": ["cat", "dog", "eel"], "counts": [50, 10, 2]}


def _geometry(k=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "means": rng.normal(size=(k, d)),
        "global_mean": rng.normal(size=d),
        "weights": rng.normal(size=(k, d)),
        "bias": np.zeros(k),
        "counts": np.array(CLASSES["counts"]),
    }


def test_a_training_run_reads_back_as_written(tmp_path):
    run = RunDir(tmp_path / "ce")
    run.create("train: {epochs: 2}\nstage2: {method: crt}\n", CLASSES)
    rows = [{"epoch": 1, "acc/all": 0.5}, {"epoch": 2, "acc/all": 0.75}]
    for r in rows:
        run.append(r)
        run.write_geometry(r["epoch"], **_geometry(seed=r["epoch"]))
    run.append({"epoch": 2, "stage": "crt", "acc/all": 0.8})
    run.write_geometry(2, stage="crt", **_geometry(seed=9))
    got = load_run(run.path)
    assert got.name == "ce" and got.rows == [*rows, {"epoch": 2, "stage": "crt", "acc/all": 0.8}]
    assert got.counts == CLASSES["counts"] and got.class_names == CLASSES["names"]
    assert sorted(got.geometry) == [1, 2] and got.problems == []  # the stage-2 geometry is not an epoch
    assert np.array_equal(got.geometry[2]["means"], _geometry(seed=2)["means"])
    assert got.series("acc/all") == ([1, 2], [0.5, 0.75])  # the stage-2 row is not on the curve
    assert got.config_text == run.config_path.read_text() and got.last["stage"] == "crt"


def test_a_federated_run_reads_like_a_centralised_one(tmp_path):
    run = RunDir(tmp_path / "fed")
    clients = {"clients": [{"client": 0, "num_samples": 60, "class_counts": [50, 10, 0]}]}
    run.create("rounds: 2\nlocal: {weight_decay: 0.0005}\n", CLASSES, {"clients.json": clients})
    for rnd in (1, 2):
        run.append({"epoch": rnd, "round": rnd, "acc/all": 0.25 * rnd, "fed/personal_acc": None})
        run.write_geometry(rnd, **_geometry(seed=rnd))
    got = load_run(run.path)
    assert got.series("acc/all") == ([1, 2], [0.25, 0.5]) and sorted(got.geometry) == [1, 2]
    assert got.counts == CLASSES["counts"] and got.problems == [] and run.is_complete()
    assert run.read_json("clients.json") == clients and run.weight_decays() == (0.0005, 0.0005)


def test_what_is_wrong_but_drawable_is_warned_and_listed(tmp_path):
    run = RunDir(tmp_path)
    run.create("train: {epochs: 3}\n", CLASSES)
    for e in (1, 2, 1):  # two writers
        run.append({"epoch": e, "acc/all": 0.5})
    run.write_geometry(1, **_geometry())
    (run.geometry_dir / "2.npz").write_bytes(b"PK\x03\x04 cut short")
    with open(run.metrics_path, "a") as fh:
        fh.write('{"epoch": 3, "acc/a')
    with pytest.warns(RunDirWarning) as caught:
        got = load_run(run.path)
    assert len(got.rows) == 3 and sorted(got.geometry) == [1]
    assert len(got.problems) == 3 and "the last line was torn" in got.problems[0]
    assert "more than once (epoch 1)" in got.problems[1] and "2.npz is unreadable" in got.problems[2]
    assert [str(w.message) for w in caught if w.category is RunDirWarning] == got.problems


def test_missing_and_damaged_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        load_run(tmp_path / "none")
    run = RunDir(tmp_path)
    run.append({"epoch": 1})
    with pytest.raises(DataError, match="not a run directory: it needs metrics.jsonl and classes.json"):
        load_run(tmp_path)
    run.classes_path.write_text('{"names": ["a"], "counts": [1, 2]}')
    with pytest.raises(DataError, match="1 names for 2 counts"):
        load_run(tmp_path)


def test_nc1_is_re_ranked_at_another_rcond_from_the_stored_spectrum(tmp_path, capsys):
    """``nclab report --rcond``: NC1 of the rows equals numpy's pinv NC1 at that tolerance (float64
    reference), other metrics unchanged; a bad rcond and rows without a spectrum exit 2 in one line."""
    import torch

    from nclab.cli import main
    from nclab.metrics import measure
    from nclab.train.evaluate import flatten
    from tests.metrics.reference import ill_conditioned_means, reference

    h, y = ill_conditioned_means(k=3, d=4, small=1e-4)  # Sigma_B's last eigenvalue: 1e-8 of its largest
    row: dict = {"epoch": 1, "acc/all": 0.5}
    flatten("nc", measure(torch.from_numpy(h), torch.from_numpy(y)), row)
    run = RunDir(tmp_path / "ce")
    run.create("train: {epochs: 1}\n", CLASSES)
    run.append(row)
    got = load_run(run.path)
    got.with_rcond(1e-3)
    want = reference(h, y, rcond=1e-3)["nc1"]
    assert abs(got.rows[0]["nc/nc1"] - want) < 1e-9 * want and got.rows[0]["nc/nc1"] < 1e-3 * row["nc/nc1"]
    assert got.rows[0]["acc/all"] == 0.5
    assert main(["report", str(run.path), "--rcond", "1e-3", "--out", str(tmp_path / "r.html")]) == 0
    assert main(["report", str(run.path), "--rcond", "1.5", "--out", str(tmp_path / "r.html")]) == 2
    assert "rcond" in capsys.readouterr().err
    old = RunDir(tmp_path / "old")
    old.create("train: {epochs: 1}\n", CLASSES)
    old.append({k: v for k, v in row.items() if "spectrum" not in k})
    assert main(["report", str(old.path), "--rcond", "1e-3", "--out", str(tmp_path / "o.html")]) == 2
    err = capsys.readouterr().err
    assert "nc1_spectrum" in err and len(err.strip().splitlines()) == 1


def test_a_sweep_run_is_named_by_its_axes_and_seed(tmp_path):
    import json

    run = RunDir(tmp_path / "imbalance=100" / "seed=1")
    run.create("train: {epochs: 1}\n", CLASSES)
    run.append({"epoch": 1, "acc/all": 0.5})
    assert load_run(run.path).name == "seed=1"  # no sweep.json: the folder
    (run.path / "sweep.json").write_text(
        json.dumps({"axes": {"imbalance": "100", "method": "ce"}, "seed": 1})
    )
    assert load_run(run.path).name == "imbalance=100 method=ce seed=1"
    (run.path / "sweep.json").write_text("{not json")
    assert load_run(run.path).name == "seed=1"
