"""`nclab table` on hand-written run directories: plain runs (axis `run`), the selected row, csv, and
runs that diverged shown as `diverged` instead of numbers."""

import csv
import io
import json

from nclab.cli import main
from nclab.sweep.table import aggregate, find_runs, load_runs
from tests.sweep.helpers import write_run


def test_plain_runs_selected_rows_and_csv(tmp_path, capsys):
    rows = [
        {"epoch": 1, "acc/all": 0.5, "val/balanced_acc": 0.9, "acc/per_class": [0.0, 1.0], "loss/test": 1.0},
        {"epoch": 2, "acc/all": 0.7, "val/balanced_acc": 0.8, "acc/per_class": [0.5, 1.0], "loss/test": 0.5},
    ]
    write_run(tmp_path / "a", rows)
    write_run(tmp_path / "b", rows[:1], epochs=2)  # incomplete: left out
    runs, incomplete = load_runs(find_runs([tmp_path]))
    assert [r.axes for r in runs] == [{"run": "a"}] and incomplete == [tmp_path / "b"]
    out = aggregate(runs, metrics=["acc/all", "acc/all@selected", "acc/per_class", "acc/few"])
    assert out[0]["acc/all"] == {"mean": 0.7, "std": None, "n": 1, "ci95": None}
    assert out[0]["acc/all@selected"]["mean"] == 0.5  # epoch 1 has the best validation accuracy
    assert out[0]["acc/per_class"]["mean"] == 0.75 and out[0]["acc/few"] is None
    assert main(["table", str(tmp_path / "a"), "--metrics", "acc/all", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert table[0]["run"] == "a" and float(table[0]["acc/all mean"]) == 0.7 and table[0]["acc/all std"] == ""


def test_a_diverged_run_shows_as_diverged(tmp_path, capsys):
    ok = [{"epoch": 1, "acc/all": 0.6, "loss/test": 0.4}]
    write_run(tmp_path / "m=a" / "seed=0", ok, epochs=1, axes={"m": "a"})
    write_run(
        tmp_path / "m=a" / "seed=1", [{"epoch": 1, "acc/all": 0.1, "loss/test": None}], 1, 1, {"m": "a"}
    )
    write_run(tmp_path / "m=b" / "seed=0", [{**ok[0], "diverged": True}], epochs=1, axes={"m": "b"})
    write_run(tmp_path / "m=c" / "seed=0", ok, epochs=1, axes={"m": "c"})
    # stopped at epoch 1 of 5 with the flag: not complete, still shown (as diverged)
    write_run(tmp_path / "m=d" / "seed=0", [{**ok[0], "diverged": True}], epochs=5, axes={"m": "d"})
    assert main(["table", str(tmp_path), "--metrics", "acc/all", "--format", "json"]) == 0
    rows = {r["m"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["a"]["diverged"] == 1 and rows["a"]["acc/all"] is None
    assert rows["b"]["diverged"] == 1 and rows["c"]["diverged"] == 0 and rows["c"]["acc/all"]["mean"] == 0.6
    assert rows["d"]["diverged"] == 1 and rows["d"]["acc/all"] is None
    assert main(["table", str(tmp_path), "--metrics", "acc/all"]) == 0
    md = capsys.readouterr().out
    assert "| a | 2 | diverged |" in md and "| c | 1 | 60.00 |" in md


def test_ci95_is_the_student_t_interval_and_rows_are_read_at_an_epoch(tmp_path):
    """The paired 95% interval against scipy's t quantile (an independent reference), for 2..40 seeds,
    and ``@epoch=N`` reads the row of that epoch (missing -> None)."""
    import numpy as np
    from scipy import stats

    from nclab.sweep.table import _stats

    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10, 31, 40):
        vals = rng.normal(size=n).tolist()
        sd = float(np.std(vals, ddof=1))
        want = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) if n <= 31 else 1.96 * sd / np.sqrt(n)
        assert abs(_stats(vals)["ci95"] - want) < 2e-3 * want
    for seed in (0, 1, 2):
        rows = [{"epoch": e, "acc/all": 0.1 * e + 0.01 * seed} for e in (1, 2, 3)]
        write_run(tmp_path / "m=a" / f"seed={seed}", rows, epochs=3, seed=seed, axes={"m": "a"})
    runs, _ = load_runs(find_runs([tmp_path]))
    out = aggregate(runs, metrics=["acc/all@epoch=2", "acc/all@epoch=9", "acc/all"])[0]
    assert abs(out["acc/all@epoch=2"]["mean"] - 0.21) < 1e-12 and out["acc/all@epoch=9"] is None
    assert abs(out["acc/all"]["ci95"] - stats.t.ppf(0.975, 2) * 0.01 / np.sqrt(3)) < 1e-5


def test_paired_cells_show_the_95_percent_interval(tmp_path, capsys):
    """Markdown: a mean ± its std; a paired difference ± the half-width of its 95% t-interval (scipy)."""
    import numpy as np
    from scipy import stats

    base, arm = [0.50, 0.60, 0.55], [0.53, 0.61, 0.60]
    for seed in range(3):
        for m, acc in (("a", base[seed]), ("b", arm[seed])):
            rows = [{"epoch": 1, "acc/all": acc}]
            write_run(tmp_path / f"m={m}" / f"seed={seed}", rows, epochs=1, seed=seed, axes={"m": m})
    assert main(["table", str(tmp_path), "--metrics", "acc/all", "--paired-against", "m=a"]) == 0
    md = capsys.readouterr().out
    diff = np.subtract(arm, base) * 100
    ci = stats.t.ppf(0.975, 2) * diff.std(ddof=1) / np.sqrt(3)
    assert f"| b | 3 | {diff.mean():+.2f} ± {ci:.2f} |" in md and "95% Student-t interval" in md
    assert f"| b | 3 | {np.mean(arm) * 100:.2f} ± {np.std(arm, ddof=1) * 100:.2f} |" in md


def test_best_of_keeps_each_arms_best_choice(tmp_path, capsys):
    """``--best-of lr=min:KEY``: per head, the lr with the lowest mean KEY over seeds (worked out by hand
    below); a tie goes to the lr first in the sweep's order, a diverged lr is never chosen, and a
    paired row against another axis pairs each arm at its best lr with the reference at its own."""
    import pytest

    from nclab.errors import ConfigError

    nc1 = {  # (head, lr) -> NC1 of seeds 0 and 1
        ("lin", "0.1"): [0.2, 0.4],  # mean 0.3
        ("lin", "0.3"): [0.1, 0.3],  # mean 0.2: chosen for lin
        ("cos", "0.1"): [0.5, 0.1],  # mean 0.3: tie with 0.3, first in order: chosen for cos
        ("cos", "0.3"): [0.3, 0.3],
        ("cos", "1.0"): [0.0, None],  # seed 1 diverged: never chosen, though seed 0 has the lowest NC1
    }
    for (head, lr), vals in nc1.items():
        for seed, v in enumerate(vals):
            row = (
                {"epoch": 1, "nc/nc1": v, "loss/train": 1.0}
                if v is not None
                else {"epoch": 1, "diverged": True}
            )
            d = write_run(tmp_path / head / lr / f"seed={seed}", [row], epochs=1, seed=seed)
            order = [["lin", "cos"].index(head), ["0.1", "0.3", "1.0"].index(lr)]
            (d / "sweep.json").write_text(
                json.dumps({"axes": {"head": head, "lr": lr}, "seed": seed, "order": order})
            )
    runs, _ = load_runs(find_runs([tmp_path]))
    out = aggregate(runs, metrics=["nc/nc1"], best_of="lr=min:nc/nc1")
    assert [(r["head"], r["lr"], round(r["nc/nc1"]["mean"], 12)) for r in out] == [
        ("lin", "0.3", 0.2),
        ("cos", "0.1", 0.3),
    ]
    worst = aggregate(runs, metrics=["nc/nc1"], best_of="lr=max:nc/nc1")
    assert [(r["head"], r["lr"]) for r in worst] == [("lin", "0.1"), ("cos", "0.1")]
    paired = [
        r
        for r in aggregate(runs, metrics=["nc/nc1"], best_of="lr=min:nc/nc1", paired_against="head=lin")
        if "paired_against" in r
    ]
    # cos at its best lr 0.1 minus lin at its own best lr 0.3, seed by seed: (0.5 - 0.1, 0.1 - 0.3)
    assert [(r["head"], r["lr"], round(r["nc/nc1"]["mean"], 12)) for r in paired] == [("cos", "0.1", 0.1)]
    assert main(["table", str(tmp_path), "--metrics", "nc/nc1", "--best-of", "lr=min:nc/nc1",
                 "--paired-against", "head=lin"]) == 0  # fmt: skip
    assert "minus head=lin at its own best lr" in capsys.readouterr().out
    assert main(["table", str(tmp_path), "--metrics", "nc/nc1", "--best-of", "lr=min:nc/nc1"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("The lr of each row is the one with the lowest mean nc/nc1 over the seeds that all")
    assert "| lin | 0.3 | 2 | 0.2000 ± 0.1414 |" in md and "| cos | 1.0 |" not in md
    for bad in ("lr=nc/nc1", "lr=least:nc/nc1", "lr=min:", "depth=min:nc/nc1"):
        with pytest.raises(ConfigError):
            aggregate(runs, metrics=["nc/nc1"], best_of=bad)
    with pytest.raises(ConfigError, match="both choose"):
        aggregate(runs, metrics=["nc/nc1"], best_of="lr=min:nc/nc1", paired_against="lr=0.1")
    assert main(["table", str(tmp_path), "--group-by", "head", "--best-of", "lr=min:nc/nc1"]) == 2
    assert "not an axis the table groups by" in capsys.readouterr().err


def test_best_of_compares_choices_on_the_seeds_they_share(tmp_path):
    """A rate trained on seed 0 only is compared with the others on seed 0, not on its one seed against
    their means over weaker seeds too (by hand: seed 0 gives 0.003 -> 0.80 > 0.001 -> 0.75, so 0.003
    wins, though its 3-seed mean 0.70 is below 0.001's single 0.75); its row keeps all 3 seeds. Choices
    that share no seed fall back to their own means (0.1 on seed 3 only: 0.90, against 0.003's 0.70)."""
    acc = {"0.001": {0: 0.75}, "0.003": {0: 0.80, 1: 0.80, 2: 0.50}}
    for lr, by_seed in acc.items():
        for seed, v in by_seed.items():
            row = [{"epoch": 1, "val/acc": v}]
            d = write_run(tmp_path / "a" / f"lr={lr}" / f"seed={seed}", row, epochs=1, seed=seed)
            rec = {"axes": {"m": "a", "lr": lr}, "seed": seed, "order": [0, list(acc).index(lr)]}
            (d / "sweep.json").write_text(json.dumps(rec))
    runs, _ = load_runs(find_runs([tmp_path / "a"]))
    out = aggregate(runs, metrics=["val/acc"], best_of="lr=max:val/acc")
    assert [(r["lr"], r["seeds"], round(r["val/acc"]["mean"], 12)) for r in out] == [("0.003", 3, 0.7)]
    d = write_run(tmp_path / "b" / "lr=0.1" / "seed=3", [{"epoch": 1, "val/acc": 0.9}], epochs=1, seed=3)
    (d / "sweep.json").write_text(json.dumps({"axes": {"m": "a", "lr": "0.1"}, "seed": 3, "order": [0, 2]}))
    runs, _ = load_runs(find_runs([tmp_path / "a" / "lr=0.003", tmp_path / "b"]))
    out = aggregate(runs, metrics=["val/acc"], best_of="lr=max:val/acc")
    assert [(r["lr"], r["seeds"]) for r in out] == [("0.1", 1)]


def test_rows_follow_the_spec_as_it_reads_now_when_an_axis_gained_choices(tmp_path, monkeypatch, capsys):
    """Records keep the choice indices of the spec when each ran. A batch size added in front of the axis
    later (64 before 128 and 256) shares index 0 with 128's stale record, and 'batch=128' sorts before
    'batch=64' by name; so the table reads the order from the spec the record names, and falls back to
    the record's own order when that spec is gone."""
    from tests.sweep.helpers import RECIPE

    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "configs" / "g.yaml"
    spec.parent.mkdir()
    stale = {"128": [0], "256": [1], "64": [0]}  # 128 and 256 ran under the old spec, 64 under the new
    for b, order in stale.items():
        d = write_run(tmp_path / "out" / f"batch={b}" / "seed=0", [{"epoch": 1, "nc/nc1": 1 / int(b)}], epochs=1)
        rec = {"axes": {"batch": b}, "seed": 0, "order": order, "spec": "configs/g.yaml"}
        (d / "sweep.json").write_text(json.dumps(rec))
    axis = "".join(f'    "{b}": [data.batch_size={b}]\n' for b in ["64", "128", "256"])
    spec.write_text(f"base: [{RECIPE}]\naxes:\n  batch:\n{axis}seeds: [0]\n")
    assert main(["table", "out", "--metrics", "nc/nc1", "--format", "csv"]) == 0
    assert [r["batch"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))] == ["64", "128", "256"]
    runs, _ = load_runs(find_runs(["out"]))
    assert [(r.axes["batch"], r.order) for r in runs] == [("64", (0,)), ("128", (1,)), ("256", (2,))]
    spec.unlink()  # gone: the records' own indices, ties by directory name
    runs, _ = load_runs(find_runs(["out"]))
    assert [(r.axes["batch"], r.order) for r in runs] == [("128", (0,)), ("64", (0,)), ("256", (1,))]


def test_the_markdown_table_ends_with_the_grids_measured_cost(tmp_path, capsys):
    """CPU-hours = wall seconds x the run's CPUs, GPU-hours = seconds x the GPUs it reserved (a share of
    one where runs share it; 1 where it reserved none), per device (by hand below); records without a
    cost are counted, and json stays a plain list of rows."""
    costs = {
        0: {"seconds": 1800.0, "cpus": 2, "gpus": 0, "device": "cpu"},  # 1 CPU-hour
        1: {"seconds": 900.0, "cpus": 4, "gpus": 0, "device": "cpu"},  # 1 CPU-hour
        2: {"seconds": 1800.0, "cpus": 8, "gpus": 0, "device": "cuda (NVIDIA H200)"},  # 0.5 GPU-hours
        4: {"seconds": 3600.0, "cpus": 4, "gpus": 0.25, "device": "cuda (NVIDIA H200)"},  # 0.25 GPU-hours
        3: None,  # recorded before nclab sweep wrote costs
    }
    for seed, cost in costs.items():
        d = write_run(tmp_path / f"seed={seed}", [{"epoch": 1, "acc/all": 0.5}], epochs=1, seed=seed)
        rec = {"axes": {"m": "a"}, "seed": seed, "order": [0], **({"cost": cost} if cost else {})}
        (d / "sweep.json").write_text(json.dumps(rec))
    assert main(["table", str(tmp_path), "--metrics", "acc/all"]) == 0
    md = capsys.readouterr().out
    assert md.rstrip().endswith(
        "Measured cost (nclab sweep's records): 2.00 CPU-hours on cpu (2 runs); "
        "0.75 GPU-hours on cuda (NVIDIA H200) (2 runs); 1 run recorded no time."
    )
    assert main(["table", str(tmp_path), "--metrics", "acc/all", "--format", "json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    for seed in costs:  # no record carries a cost: no line
        (tmp_path / f"seed={seed}" / "sweep.json").write_text(json.dumps({"axes": {"m": "a"}, "seed": seed}))
    assert main(["table", str(tmp_path), "--metrics", "acc/all"]) == 0
    assert "Measured cost" not in capsys.readouterr().out


def test_a_window_mean_reads_each_metric_averaged_over_those_rounds(tmp_path, capsys):
    """``@mean=A..B``: the mean of the rows of epochs (rounds) A..B, by hand; a window where a row lacks
    the metric or holds a non-finite loss is undefined (null) or diverged, never a partial mean."""
    rows = [{"epoch": e, "round": e, "acc/all": a, "loss/test": 1.0} for e, a in ((5, 0.4), (10, 0.8), (15, 0.5))]
    rows[0]["acc/few"] = 0.3  # only in the first row
    write_run(tmp_path / "m=a" / "seed=0", rows, epochs=15, axes={"m": "a"})
    runs, _ = load_runs(find_runs([tmp_path]))
    out = aggregate(runs, metrics=["acc/all@mean=10..15", "acc/all@mean=1..15", "acc/few@mean=5..10",
                                   "acc/all@mean=16..20"])[0]  # fmt: skip
    assert abs(out["acc/all@mean=10..15"]["mean"] - 0.65) < 1e-12
    assert abs(out["acc/all@mean=1..15"]["mean"] - (0.4 + 0.8 + 0.5) / 3) < 1e-12
    assert out["acc/few@mean=5..10"] is None and out["acc/all@mean=16..20"] is None
    rows[1]["loss/test"] = float("nan")
    write_run(tmp_path / "m=b" / "seed=0", rows, epochs=15, axes={"m": "b"})
    runs, _ = load_runs(find_runs([tmp_path]))
    got = {r["m"]: r for r in aggregate(runs, metrics=["acc/all@mean=5..10", "acc/all@mean=15..15"])}
    assert got["b"]["diverged"] == 1 and got["a"]["diverged"] == 0
    for bad in ("acc/all@mean=15..5", "acc/all@mean=5", "acc/all@mean=a..b"):
        assert main(["table", str(tmp_path), "--metrics", bad]) == 2
        assert "@mean=A..B (A <= B)" in capsys.readouterr().err
