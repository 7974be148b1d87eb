"""scripts/fed_head_diagnosis.py: its measurements on runs trained through the real rounds, its helpers
against hand computations, and a one-line error for a directory that is not a run."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("flwr")

from nclab.fed.config import load_fed_config  # noqa: E402
from tests.fed.test_runner import in_process  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "recipes"
spec = importlib.util.spec_from_file_location(
    "fed_head_diagnosis", ROOT / "scripts" / "fed_head_diagnosis.py"
)
diag = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diag)


def last_row(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]


@pytest.mark.parametrize("method", ["fedgela_authors", "fedavg"])
def test_diagnose_a_trained_run(tmp_path, method):
    files = [RECIPES / "fed_synthetic.yaml"]
    if method == "fedgela_authors":
        files.append(RECIPES / "fed_gela_authors.yaml")
    cfg = load_fed_config(files, ["local.batch_size=16"] + (["method=fedavg"] if method == "fedavg" else []))
    cfg.run_dir = str(tmp_path / "run")
    run = in_process(cfg, tmp_path / "run")
    got = diag.diagnose(run)
    assert got["round"] == cfg.rounds
    assert got["acc"] == pytest.approx(last_row(run)["acc/all"], abs=1e-6)  # the runner's own evaluation
    for key in ("ncm/backbone", "ncm/head"):
        assert 0.0 <= got[key] <= 1.0
    assert -1.0 <= got["cos"] <= 1.0
    rows = got["per_class"]
    assert [r["class"] for r in rows] == list(range(len(rows)))
    assert sum(r["n"] for r in rows) == sum(json.loads((run / "classes.json").read_text())["counts"])
    assert all(0.0 <= r["acc"] <= 1.0 and -1.0 <= r["cos"] <= 1.0 for r in rows)
    # the synthetic test set is balanced: the per-class accuracies average to the accuracy
    assert sum(r["acc"] for r in rows) / len(rows) == pytest.approx(got["acc"], abs=1e-6)
    assert sum(r["cos"] for r in rows) / len(rows) == pytest.approx(got["cos"], abs=1e-6)
    assert sum(r["logit/shared"] for r in rows) == pytest.approx(0.0, abs=1e-4)
    if method == "fedgela_authors":  # BatchNorm in the projection: its statistics recomputed
        assert got["acc/bn_pooled"] is not None and 0.0 <= got["acc/bn_pooled"] <= 1.0
    else:  # the MLP has no BatchNorm, and the classifier sees the backbone's features
        assert got["acc/bn_pooled"] is None and got["ncm/head"] == got["ncm/backbone"]


def test_nearest_mean_accuracy_by_hand():
    train = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [12.0, 0.0]])  # means (1, 0) and (11, 0)
    test = torch.tensor([[5.9, 0.0], [6.1, 0.0], [0.0, 3.0]])
    acc = diag.nearest_mean_accuracy(train, torch.tensor([0, 0, 1, 1]), test, torch.tensor([0, 0, 0]), 2)
    assert acc == pytest.approx(2 / 3)  # 5.9 -> 0, 6.1 -> 1, (0, 3) -> 0


def test_centred_mean_cosines_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 2.0], [-1.0, 2.0]])  # class means (2, 2) and (-1, 2); centre (0.5, 2)
    y = torch.tensor([0, 0, 1])
    rows = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])  # centred means (1.5, 0) and (-1.5, 0)
    assert diag.centred_mean_cosines(f, y, rows).tolist() == pytest.approx([2**-0.5, 1.0])


def test_recompute_batchnorm_gives_the_pooled_statistics():
    net = torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    net.head = torch.nn.Identity()
    x = torch.randn(40, 3, dtype=torch.float64).float() * 3 + 1
    assert diag.recompute_batchnorm(net, [x[:20], x[20:]])
    bn = net[0]
    batch_var = torch.stack([x[:20].var(0), x[20:].var(0)])  # BatchNorm keeps the unbiased batch variance
    torch.testing.assert_close(bn.running_mean, x.mean(0))
    torch.testing.assert_close(bn.running_var, batch_var.mean(0))
    assert not bn.training
    assert not diag.recompute_batchnorm(torch.nn.Linear(2, 2), [torch.randn(4, 2)])


def test_a_directory_that_is_not_a_run_is_a_one_line_error(tmp_path, capsys):
    assert diag.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_per_class_accuracy_by_hand():
    pred, y = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 0, 1, 1, 1])
    got = diag.per_class_accuracy(pred, y, 3)
    assert got[:2].tolist() == pytest.approx([0.5, 1 / 3]) and torch.isnan(got[2])  # class 2 not in y


def test_shared_logits_by_hand():
    logits = torch.tensor([[4.0, 0.0], [2.0, 0.0], [1.0, 3.0]])  # class means (3, 0) and (1, 3)
    y = torch.tensor([0, 0, 1])
    # average over classes (2, 1.5), less its mean 1.75
    assert diag.shared_logits(logits, y).tolist() == pytest.approx([0.25, -0.25])


def test_class_pull_by_hand():
    # client A: 6 of class 0, 2 of class 1 (n = 8, phi = (3 * 6/8, 3 * 2/8, 0) = (2.25, 0.75, 0));
    # client B: 2 of class 1, 2 of class 2 (phi = (0, 1.5, 1.5)); client C: 1 of class 2, trains nothing
    n, trained, phi = diag.class_pull([[6, 2, 0], [0, 2, 2], [0, 0, 1]], trains=[True, True, False])
    assert n == [6, 4, 3] and trained == [6, 4, 2]
    assert phi == pytest.approx([2.25, (2 * 0.75 + 2 * 1.5) / 4, 1.5])
    _, _, phi = diag.class_pull([[6, 2, 0], [0, 0, 1]], trains=[True, False], c=2.0)  # C = 2, client 2 idle
    assert phi[0] == pytest.approx(2 * 6 / 8) and phi[1] == pytest.approx(2 * 2 / 8) and phi[2] is None
    _, _, phi = diag.class_pull([[6, 2, 0], [0, 2, 2]], trains=[True, True], floor=1.0)  # gela_phi_min = 1
    assert phi == pytest.approx([2.25, (2 * 1.0 + 2 * 1.5) / 4, 1.5])  # A's class 1: 0.75 lifted to 1


def test_per_class_table_is_printed(tmp_path, capsys):
    cfg = load_fed_config([RECIPES / "fed_synthetic.yaml"], ["local.batch_size=16", "rounds=1"])
    cfg.run_dir = str(tmp_path / "run")
    run = in_process(cfg, tmp_path / "run")
    capsys.readouterr()  # what the run printed
    assert diag.main([str(run), "--per-class"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run | round") and lines[1].startswith(str(run))
    assert lines[2].split(" | ")[0].strip() == "class"
    rows = [line.split(" | ") for line in lines[3:]]
    assert [int(r[0]) for r in rows] == list(range(cfg.data.num_classes))  # a row per class
