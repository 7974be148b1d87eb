"""A federated run (fed/runner.py) end to end on Flower's simulation (needs the `fed` extra).

One simulated run is shared by the tests of this module; the same rounds driven in process, with the
strategy and the clients called directly (:func:`in_process`), are the reference it must equal. A killed
and resumed simulation: tests/fed/test_fed_trust.py.
"""

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays  # noqa: E402

from nclab.cli import main  # noqa: E402
from nclab.fed.config import load_fed_config  # noqa: E402
from nclab.fed.flower import NclabClient, NclabStrategy  # noqa: E402
from nclab.fed.runner import FedRun  # noqa: E402
from nclab.fed.setup import get_setup  # noqa: E402
from nclab.rundir import RunDir  # noqa: E402
from tests.fed.helpers import Nodes

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "recipes" / "fed_synthetic.yaml"


def rows(run_dir):
    """The rows of ``run_dir`` without ``wall_time``."""
    out, torn = RunDir(run_dir).rows()
    assert not torn
    for r in out:
        r.pop("wall_time")
    return out


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Two rounds of the recipe (method fedgela), simulated."""
    run = tmp_path_factory.mktemp("fed") / "gela"
    with pytest.MonkeyPatch.context() as mp:  # Flower's simulation workers must import this checkout
        mp.setenv("PYTHONPATH", str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        assert main(["fed", str(SMOKE), "--run-dir", str(run)]) == 0
    return run


def in_process(cfg, run_dir):
    """The rounds of ``cfg`` without Flower's transport: what the simulation must reproduce."""
    run = FedRun(cfg, run_dir)
    try:
        strategy = NclabStrategy(cfg, run.initial_state(), run.on_round)
        client, params = NclabClient(get_setup(cfg)), ndarrays_to_parameters(run.initial_state())
        for rnd in range(1, cfg.rounds + 1):
            results = []
            for _, ins in strategy.configure_fit(rnd, params, Nodes(cfg.clients_per_round)):
                new, n, metrics = client.fit(parameters_to_ndarrays(ins.parameters), ins.config)
                results.append((None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(new), n, metrics)))
            params, _ = strategy.aggregate_fit(rnd, results, [])
    finally:
        run.close()
    return run_dir


def test_the_simulation_writes_the_run_dir(simulated):
    got = rows(simulated)
    assert [r["epoch"] for r in got] == [1, 2] and [r["round"] for r in got] == [1, 2]
    assert 0.0 <= got[-1]["acc/all"] <= 1.0 and got[-1]["fed/personal_acc"] is not None
    assert "nc/nc1" in got[-1] and got[-1]["fed/clients"] == [0, 1]
    clients = RunDir(simulated).read_json("clients.json")["clients"]
    assert len(clients) == 2 and all(sum(c["class_counts"]) == c["num_samples"] for c in clients)
    assert RunDir(simulated).load_checkpoint()["round"] == 2 and RunDir(simulated).is_complete()
    assert (simulated / "geometry" / "2.npz").is_file()


def test_the_simulation_equals_the_rounds_driven_in_process(simulated, tmp_path, capsys):
    ref = in_process(load_fed_config(SMOKE), tmp_path / "ref")
    assert rows(simulated) == rows(ref)
    assert "round 2/2" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["fedavg", "fedprox", "fedavg_etf"])
def test_every_method_runs_its_rounds(method, tmp_path):
    got = rows(in_process(load_fed_config(SMOKE, [f"method={method}"]), tmp_path / method))
    assert [r["round"] for r in got] == [1, 2] and all(0 <= r["acc/all"] <= 1 for r in got)
    learnable = method != "fedavg_etf"  # the angle collapse of missing classes needs a learnable head
    assert (got[-1]["fed/missing_class_cos"] is not None) == learnable


def test_eval_every_evaluates_fewer_rounds_and_trains_the_same(tmp_path):
    """``eval_every=2`` over 5 rounds: rows at rounds 2, 4 and the last, equal to those of the run that
    evaluates every round (evaluation changes no training); a checkpoint after every round."""
    every = rows(in_process(load_fed_config(SMOKE, ["rounds=5"]), tmp_path / "every"))
    sparse_dir = in_process(load_fed_config(SMOKE, ["rounds=5", "eval_every=2"]), tmp_path / "sparse")
    sparse = rows(sparse_dir)
    assert [r["round"] for r in sparse] == [2, 4, 5]
    assert sparse == [r for r in every if r["round"] in (2, 4, 5)]
    assert RunDir(sparse_dir).load_checkpoint()["round"] == 5 and RunDir(sparse_dir).is_complete()
    assert sorted(p.name for p in (sparse_dir / "geometry").iterdir()) == ["2.npz", "4.npz", "5.npz"]


def test_the_authors_fedgela_learns_and_selects_on_a_validation_split(tmp_path):
    """FedGELA as its authors' code runs it (configs/recipes/fed_gela_authors.yaml) through the real
    rounds: above chance (1/K = 0.25) on the test set, ``val/acc`` every round from a split carved before
    partitioning, and the head's BatchNorm statistics aggregated with the rest of the state."""
    from nclab.fed.local import shared_keys

    cfg = load_fed_config(
        [SMOKE, SMOKE.parent / "fed_gela_authors.yaml"],
        ["rounds=5", "local.epochs=5", "data.val_fraction=0.2"],
    )
    got = rows(in_process(cfg, tmp_path / "authors"))
    assert [r["round"] for r in got] == [1, 2, 3, 4, 5]
    assert got[-1]["acc/all"] > 0.5 and got[-1]["val/acc"] > 0.5
    assert all(0 <= r["val/acc"] <= 1 and 0 <= r["val/balanced_acc"] <= 1 for r in got)
    assert "nc/nc1" in got[-1]  # NC of the BatchNorm'd projection against diag(phi) E
    s = get_setup(cfg)
    assert len(s.data.val_y) > 0 and sum(len(p) for p in s.parts) == len(
        s.data.train_y
    )  # clients never see it
    keys = shared_keys(s.build_model())
    params = RunDir(tmp_path / "authors").load_checkpoint()["params"]
    stats = params[keys.index("head.bn.running_mean")]
    assert stats.abs().sum() > 0  # averaged clients' running statistics, not the initial zeros


def test_a_federated_run_reads_with_nclab_report_like_a_centralised_one(simulated, tmp_path):
    """Same files, same arrays, the same report panels: ``epoch`` is the round."""
    pytest.importorskip("matplotlib")
    from nclab.report.rundir import load_run

    central = tmp_path / "central"
    assert (
        main(["train", str(SMOKE.parent / "synthetic.yaml"), "train.epochs=2", "--run-dir", str(central)])
        == 0
    )
    fed, cen = load_run(simulated), load_run(central)
    assert [r["epoch"] for r in fed.rows] == [1, 2] and not fed.problems
    assert fed.counts == RunDir(simulated).classes()["counts"] and len(fed.class_names) == len(fed.counts)
    assert set(fed.geometry) == {1, 2} and set(fed.geometry[2]) == set(cen.geometry[2])
    assert {k for k in cen.rows[-1] if k.startswith("acc/")} == {
        k for k in fed.rows[-1] if k.startswith("acc/")
    }
    for run in (simulated, central):
        out = tmp_path / f"{run.name}.html"
        assert main(["report", str(run), "--out", str(out)]) == 0
        page = out.read_text()
        assert page.count("<img") == 5 and "Not available" not in page, run.name
    assert json.loads((simulated / "classes.json").read_text())["counts"] == fed.counts
