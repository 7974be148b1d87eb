"""nclab.ufm.solver: the solver rules, and both solvers against the balanced closed form (Zhu et al.)
and against each other on an imbalanced problem."""

import json

import pytest
import torch

from nclab.cli import main
from nclab.errors import ConfigError
from nclab.geometry import simplex_etf
from nclab.ufm import UFM, balanced_ce_minimizer, solve
from nclab.ufm.solver import NC_KEYS

IMBALANCED = [50, 50, 50, 10, 10]


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"solver": "convex", "loss": "mse"}, "CE loss"),
        ({"solver": "convex", "dim": 3}, r"dim >= K \(5\), got 3"),
        ({"solver": "newton"}, "gd, convex"),
    ],
)
def test_rules_raise_before_any_work(kw, match):
    with pytest.raises(ConfigError, match=match):
        solve(IMBALANCED, **{"dim": 8, **kw})


def test_rule_errors_exit_2_with_one_line(capsys):
    args = ["ufm", "--counts", "50x3,10x2", "--dim", "3", "--solver", "convex"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dim >= K (5)" in err and "gd" in err
    assert main(["ufm", "--counts", "50x3,10x2", "--loss", "mse", "--solver", "convex"]) == 2
    assert "CE loss" in capsys.readouterr().err


@pytest.mark.parametrize("solver", ["gd", "convex"])
def test_balanced_ce_is_the_closed_form_simplex_etf(solver):
    k, n, d, lw, lh = 4, 5, 6, 2e-2, 2e-2
    ref = balanced_ce_minimizer(k, n, lw, lh)
    assert not ref["zero"]
    s = solve([n] * k, d, lambda_w=lw, lambda_h=lh, solver=solver, steps=2000, lr=1.0)
    assert s.objective == pytest.approx(ref["objective"], rel=1e-9)
    w = s.W - s.W.mean(0)  # the bias absorbs a common shift of the logits; W of the optimum is centred
    torch.testing.assert_close(
        w.norm(dim=1), torch.full((k,), ref["w_norm"], dtype=w.dtype), rtol=1e-6, atol=0
    )
    h_norm = torch.full((k * n,), ref["h_norm"], dtype=s.H.dtype)
    torch.testing.assert_close(s.H.norm(dim=1), h_norm, rtol=1e-6, atol=0)
    etf = simplex_etf(k, k, dtype=torch.float64)  # unit rows, cosines -1/(K-1)
    torch.testing.assert_close(w @ w.T, ref["w_norm"] ** 2 * (etf @ etf.T), rtol=0, atol=1e-6)
    # self-duality (NC3): each class mean points along its classifier row
    cos = torch.nn.functional.cosine_similarity(s.class_means, w, dim=1)
    torch.testing.assert_close(cos, torch.ones(k, dtype=cos.dtype), rtol=0, atol=1e-9)


def test_gd_and_convex_agree_on_an_imbalanced_problem():
    lw, lh, lb = 5e-3, 5e-3, 1e-3
    gd = solve(IMBALANCED, 8, lambda_w=lw, lambda_h=lh, lambda_b=lb, steps=3000)
    cv = solve(IMBALANCED, 8, lambda_w=lw, lambda_h=lh, lambda_b=lb, solver="convex")
    assert cv.info["kkt"] < 1e-8 and gd.info == {"steps": 3000}
    # the convex solution factored back into (W, H, b) is a point of the UFM with the program's value
    ufm = UFM(IMBALANCED, 8, lambda_w=lw, lambda_h=lh, lambda_b=lb)
    assert float(ufm.objective(cv.W, cv.H, cv.b)) == pytest.approx(cv.objective, rel=1e-10)
    assert gd.objective == pytest.approx(cv.objective, rel=1e-9)
    zg, zc = (torch.tensor(x.to_dict()["Z"], dtype=torch.float64) for x in (gd, cv))
    torch.testing.assert_close(zg, zc, atol=1e-5, rtol=0)


def test_to_dict_is_the_json_of_nclab_ufm(capsys):
    s = solve([6, 6, 2], solver="convex")
    assert s.dim == 3 and s.H.shape == (14, 3)  # dim defaults to K
    out = s.to_dict()
    assert list(out) == [
        "counts",
        "dim",
        "solver",
        "objective",
        "kkt",
        "iterations",
        "nc",
        "groups",
        "seli",
        "Z",
    ]
    assert list(out["nc"]) == list(NC_KEYS) and [g["count"] for g in out["groups"]] == [6, 2]
    assert main(["ufm", "--counts", "6x2,2", "--solver", "convex", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(out))
