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
    if method == "fedgela_authors":  # BatchNorm in the projection: its statistics recomputed
        assert got["acc/bn_pooled"] is not None and 0.0 <= got["acc/bn_pooled"] <= 1.0
    else:  # the MLP has no BatchNorm, and the classifier sees the backbone's features
        assert got["acc/bn_pooled"] is None and got["ncm/head"] == got["ncm/backbone"]


def test_nearest_mean_accuracy_by_hand():
    train = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [12.0, 0.0]])  # means (1, 0) and (11, 0)
    test = torch.tensor([[5.9, 0.0], [6.1, 0.0], [0.0, 3.0]])
    acc = diag.nearest_mean_accuracy(train, torch.tensor([0, 0, 1, 1]), test, torch.tensor([0, 0, 0]), 2)
    assert acc == pytest.approx(2 / 3)  # 5.9 -> 0, 6.1 -> 1, (0, 3) -> 0


def test_centred_mean_cosine_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 2.0], [-1.0, 2.0]])  # class means (2, 2) and (-1, 2); centre (0.5, 2)
    y = torch.tensor([0, 0, 1])
    rows = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])  # centred means (1.5, 0) and (-1.5, 0)
    assert diag.centred_mean_cosine(f, y, rows) == pytest.approx((2**-0.5 + 1.0) / 2)


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
