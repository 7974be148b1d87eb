"""`nclab ufm` (nclab.commands.ufm): solve, advise and reproduce through the command line."""

import json
import math

import pytest
import torch

from nclab.cli import main


def test_cli_solve_gd_and_convex_agree(capsys):
    args = ["ufm", "--counts", "30x2,6x2", "--dim", "6", "--lambda-w", "5e-3", "--lambda-h", "5e-3", "--json"]
    assert main([*args, "--steps", "8000"]) == 0
    gd = json.loads(capsys.readouterr().out)
    assert main([*args, "--solver", "convex"]) == 0
    cv = json.loads(capsys.readouterr().out)
    assert gd["objective"] == pytest.approx(cv["objective"], rel=1e-4)
    assert gd["seli"] is not None and len(gd["groups"]) == 2
    torch.testing.assert_close(torch.tensor(gd["Z"]), torch.tensor(cv["Z"]), atol=2e-2, rtol=0)


def test_cli_advise_table_json_and_run_dir(tmp_path, capsys):
    assert main(["ufm", "advise", "--counts", "500x5,100x5", "--lambda-w", "2e-2", "--lambda-h", "1e-3"]) == 0
    out = capsys.readouterr().out
    assert "YES" in out and "safe weight decay" in out
    assert main(["ufm", "advise", "--counts", "100x3,4x3", "--lambda", "0.01", "--json"]) == 0
    adv = json.loads(capsys.readouterr().out)
    assert adv["collapsed"] == [[3, 4, 5]] and adv["thresholds"][0] == "inf"
    run = tmp_path / "run"
    run.mkdir()
    (run / "classes.json").write_text(json.dumps({"names": list("abcd"), "counts": [100, 100, 4, 4]}))
    (run / "config.yaml").write_text("optim:\n  weight_decay: 0.001\n  head_weight_decay: 0.01\n")
    assert main(["ufm", "advise", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lam"] == pytest.approx(math.sqrt(1e-5))
    assert main(["ufm", "advise", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "classes.json" in err and err.count("\n") == 1
    assert main(["ufm", "advise", "--counts", "10x0,5", "--lambda", "0.1"]) == 2


@pytest.mark.parametrize("paper", ["zhu", "hong-ling", "yaras"])
def test_reproduce_quick_writes_png_and_csv(tmp_path, paper, capsys):
    assert main(["ufm", "reproduce", paper, "--out", str(tmp_path), "--quick"]) == 0
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.stat().st_size > 10_000 for p in pngs)
    assert list(tmp_path.glob("*.csv"))
    assert "wrote:" in capsys.readouterr().out


def test_reproduce_seli_quick(tmp_path):
    assert main(["ufm", "reproduce", "seli", "--out", str(tmp_path), "--quick"]) == 0
    assert (tmp_path / "seli.png").is_file()
    # the claim: the convex program's solution tends to SELI as lam -> 0 (exactly SELI when balanced)
    import csv

    rows = list(csv.DictReader((tmp_path / "seli_vs_lambda.csv").open()))
    dist = {
        r: [float(x["dist_W"]) for x in sorted(rows, key=lambda x: float(x["lam"])) if x["R"] == r]
        for r in ("1", "10", "100")
    }
    assert max(dist["1"]) < 1e-8, dist  # balanced: the simplex ETF, which is SELI, at every lam
    for r in ("10", "100"):
        assert len(dist[r]) == 3 and dist[r][0] < dist[r][1] < dist[r][2], dist


def test_advise_refuses_counts_with_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "classes.json").write_text(json.dumps({"names": list("ab"), "counts": [100, 4]}))
    assert main(["ufm", "advise", "--counts", "5x3", "--run", str(run), "--lambda", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not both" in err
