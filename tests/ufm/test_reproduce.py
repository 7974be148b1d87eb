"""`nclab ufm reproduce yaras`: steps to NC1 < 1e-3 per model at its own best step size (nclab.ufm.reproduce).

The PNG/CSV smoke test of every reproduction (through the CLI) is in tests/commands/test_ufm.py; here: the cheap NC1 against
``measure``, the step-size grid picks the fastest by hand, divergence and transient dips are not
convergence, the verdict follows the numbers, and the sphere model's optimum is the simplex ETF.
"""

from __future__ import annotations

import csv
import math

import pytest
import torch

from nclab.errors import NclabError
from nclab.metrics import measure
from nclab.ufm.problem import UFM
from nclab.ufm.reproduce import (
    YARAS_NC1,
    _nc1,
    best_step_size,
    reproduce,
    step_size_search,
    steps_to_collapse,
    yaras_verdict,
)


@pytest.mark.parametrize("counts, d", [([10] * 4, 4), ([7, 3, 5], 5), ([4] * 5, 3)])
def test_nc1_matches_measure(counts, d):
    g = torch.Generator().manual_seed(len(counts) + d)
    y = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    centres = 2 * torch.randn(len(counts), d, generator=g, dtype=torch.float64)
    h = centres[y] + torch.randn(len(y), d, generator=g, dtype=torch.float64)
    assert _nc1(h, y, len(counts)) == pytest.approx(measure(h, y)["nc1"], rel=1e-10)


def test_best_step_size_by_hand():
    # mean steps: 0.1 -> 110, 1 -> 40, 10 -> a seed failed (excluded however fast the other)
    assert best_step_size({0.1: [100, 120], 1.0: [30, 50], 10.0: [None, 5]}) == 1.0
    assert best_step_size({1.0: [10, 12], 2.0: [11, 11]}) == 1.0  # equal means: the smaller step size
    assert best_step_size({1.0: [None], 3.0: [None]}) is None


def test_step_size_search_picks_the_fastest_tried_on_a_tiny_case():
    def make():
        return UFM([3] * 3, 3, lambda_w=1e-2, lambda_h=1e-2, lambda_b=1e-2)

    found = step_size_search(make, [1.0, 3.0], [0, 1], cap=300)
    # by hand: every step size the search tried, rerun on its own; the fastest mean over both seeds
    means = {}
    for lr in found["runs"]:
        steps = [steps_to_collapse(make(), lr, seed=s, cap=300)["steps"] for s in (0, 1)]
        assert steps == [r["steps"] for r in found["runs"][lr]]
        if None not in steps:
            means[lr] = sum(steps) / 2
    assert found["best"] == min(means, key=means.get)
    # the grid's largest step size was fastest, so the search widened past it and bracketed the best
    assert max(found["runs"]) > 3.0 and found["bracketed"]
    tried = sorted(found["runs"])
    assert tried[0] < found["best"] < tried[-1]


def test_divergence_is_not_convergence():
    ufm = UFM([5] * 3, 3, lambda_w=1e-2, lambda_h=1e-2, lambda_b=1e-2)
    run = steps_to_collapse(ufm, 1e3, cap=500)
    assert run["status"] == "diverged" and run["steps"] is None
    assert len(run["curve"]) < 100  # stopped at the first non-finite objective, not at the cap
    found = step_size_search(lambda: UFM([5] * 3, 3, lambda_w=1e-2, lambda_h=1e-2), [1.0, 1e3], [0], cap=500)
    assert found["runs"][1e3][0]["status"] == "diverged"
    assert found["best"] is not None and found["best"] < 1e3


def test_a_transient_dip_of_an_unstable_run_is_not_convergence():
    # the sphere model at a too-large step size dips below the threshold early, then oscillates
    run = steps_to_collapse(UFM([10] * 4, 4, normalized=True, tau=4.0), 10.0, cap=300)
    assert min(c[1] for c in run["curve"]) < YARAS_NC1
    assert run["status"] == "not converged" and run["steps"] is None
    ok = steps_to_collapse(UFM([10] * 4, 4, normalized=True, tau=4.0), 3.0, cap=600)
    assert ok["status"] == "converged"
    assert all(c[1] < YARAS_NC1 for c in ok["curve"] if c[0] >= ok["steps"])
    assert ok["curve"][ok["steps"] - 2][1] >= YARAS_NC1  # the step before the stretch was above


def _row(label, model, steps):
    ok = [s for s in steps if s is not None]
    full = len(ok) == len(steps)
    return {
        "label": label,
        "model": model,
        "best_lr": 1.0 if full else None,
        "steps_mean": sum(ok) / len(ok) if full else None,
        "steps_min": min(ok) if full else None,
        "steps_max": max(ok) if full else None,
    }


def test_verdict_follows_the_numbers():
    sphere = [_row("s2", "normalized", [20, 25]), _row("s8", "normalized", [None, 30])]
    fast_wd, slow_wd, level_wd = (
        _row(x, "weight decay", s) for x, s in (("a", [10, 12]), ("b", [40, 50]), ("c", [22, 30]))
    )
    assert "REPRODUCED" in yaras_verdict(sphere + [slow_wd]) and "NOT" not in yaras_verdict(
        sphere + [slow_wd]
    )
    assert "NOT REPRODUCED" in yaras_verdict(sphere + [fast_wd, level_wd])
    mixed = yaras_verdict(sphere + [fast_wd, slow_wd, level_wd])
    assert "MIXED" in mixed and "faster than 1 of 3" in mixed and "slower than 1" in mixed
    assert "s8: none converged" in mixed
    # a weight-decay model that never converged is slower than any sphere model that did
    assert "NOT" not in yaras_verdict(sphere + [_row("d", "weight decay", [None])])
    with pytest.raises(NclabError, match="sphere model"):
        yaras_verdict([slow_wd])


def test_sphere_model_optimum_is_the_simplex_etf():
    """Yaras et al. (2022): the global minimisers have h_i = w_{y_i} and W a unit simplex ETF, with loss
    log(1 + (K-1) exp(-tau K/(K-1))). Checked in float64 against an ETF built here and random points."""
    k, n, d, tau = 4, 5, 6, 4.0
    ufm = UFM([n] * k, d, normalized=True, tau=tau)
    res = ufm.fit(steps=1500, lr=3.0, seed=1)
    etf_gram = (k / (k - 1)) * torch.eye(k, dtype=torch.float64) - 1 / (k - 1)  # 1 on, -1/(K-1) off
    assert torch.allclose(res.W @ res.W.T, etf_gram, atol=1e-6)
    assert torch.allclose(res.H, res.W[res.labels], atol=1e-6)  # h_i = w_{y_i}
    means = res.class_means()
    assert torch.allclose(means @ means.T, etf_gram, atol=1e-6)
    assert measure(res.H, res.labels)["nc1"] < 1e-9
    min_loss = math.log1p((k - 1) * math.exp(-tau * k / (k - 1)))
    assert res.objective == pytest.approx(min_loss, rel=1e-9)
    # an ETF built independently (centred, normalised basis vectors) attains it; random unit rows do worse
    e = torch.eye(k, d, dtype=torch.float64)
    w = (e - e.mean(0)) / math.sqrt((k - 1) / k)  # e_i minus the centroid, of norm sqrt((K-1)/K)
    assert torch.allclose(w @ w.T, etf_gram, atol=1e-12)
    assert float(ufm.objective(w, w[ufm.labels])) == pytest.approx(min_loss, rel=1e-12)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        wr = torch.nn.functional.normalize(torch.randn(k, d, generator=g, dtype=torch.float64), dim=1)
        hr = torch.nn.functional.normalize(
            wr[ufm.labels] + 0.3 * torch.randn(k * n, d, generator=g, dtype=torch.float64), dim=1
        )
        assert float(ufm.objective(wr, hr)) > min_loss


def test_quick_reproduction_table_and_verdict(tmp_path):
    files = reproduce("yaras", tmp_path, quick=True)
    assert {f.name for f in files} == {"yaras.png", "yaras.csv", "yaras_grid.csv", "yaras_verdict.txt"}
    rows = list(csv.DictReader((tmp_path / "yaras.csv").open()))
    grid = list(csv.DictReader((tmp_path / "yaras_grid.csv").open()))
    for r in rows:  # each model's best is the fastest fully converged step size of its own grid
        mine = [g for g in grid if g["label"] == r["label"]]
        ok = {float(g["lr"]): int(g["steps"]) for g in mine if g["status"] == "converged"}
        assert float(r["best_lr"]) == min(ok, key=ok.get)
        assert float(r["steps_mean"]) == ok[float(r["best_lr"])]
    verdict = (tmp_path / "yaras_verdict.txt").read_text()
    sphere, wd = (float(r["steps_mean"]) for r in rows)
    assert ("NOT REPRODUCED" in verdict) == (sphere > wd)


def test_reproduce_spa_quick(tmp_path):
    pytest.importorskip("matplotlib")
    from nclab.ufm.reproduce import reproduce

    files = reproduce("spa", tmp_path, quick=True)
    assert all(f.is_file() for f in files)
    text = (tmp_path / "spa_ufm.csv").read_text()
    assert text.count("\n") == 13 and "slerp" in text and "proj" in text
