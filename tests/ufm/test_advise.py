"""nclab.ufm.advise: collapse advice against the closed forms and the convex solver (the `nclab ufm
advise` command: tests/commands/test_ufm.py)."""

import math

import pytest
import torch

from nclab.cli import main
from nclab.errors import NclabError
from nclab.ufm import minority_collapse_threshold, solve_convex, zero_solution_threshold
from nclab.ufm.advise import advise


def _minor_spread(counts, lam, minor):
    z = solve_convex(counts, lam).Z[:, minor]
    return float((z - z.mean(1, keepdim=True)).abs().max())


def test_advice_agrees_with_two_cluster_closed_form_and_solver():
    counts = [100] * 3 + [4] * 3
    thr = minority_collapse_threshold(100, 3, 4, 3)
    a = advise(counts, lam=1.2 * thr)
    assert a.collapsed == [[3, 4, 5]]
    assert a.max_safe_lam == pytest.approx(thr)
    assert a.zero_lam == pytest.approx(zero_solution_threshold(100, 3, 4, 3))
    assert a.thresholds[3] == pytest.approx(thr) and math.isinf(a.thresholds[0])
    assert _minor_spread(counts, a.lam, [3, 4, 5]) < 1e-8  # the solver agrees: collapsed
    assert a.oversample is not None and a.oversample > 1
    # at the advised counts the solver's Z shows no collapse at the same lambda
    assert _minor_spread(a.advised_counts, a.lam, [3, 4, 5]) > 1e-4
    assert advise(counts, lam=0.8 * thr).collapsed == [] and advise(counts, lam=0.8 * thr).oversample == 1.0


def test_advice_from_weight_decays_and_safe_scale():
    a = advise([500] * 5 + [100] * 5, lambda_w=2e-2, lambda_h=1e-3)
    assert a.lam == pytest.approx(math.sqrt(2e-5))
    assert a.collapsed == [[5, 6, 7, 8, 9]]
    s = a.max_safe_weight_decay
    assert s["scale"] == pytest.approx(a.max_safe_lam / a.lam)
    assert math.sqrt(s["lambda_w"] * s["lambda_h"]) == pytest.approx(a.max_safe_lam)


def test_zero_solution_collapses_everything():
    a = advise([50, 50, 10, 10], lam=1.0)
    assert a.collapsed == [[0, 1, 2, 3]]
    assert float(solve_convex([50, 50, 10, 10], 1.0).Z.abs().max()) < 1e-10


@pytest.mark.parametrize(
    "kw",
    [dict(lam=0.0), dict(lam=-1.0), dict(), dict(lambda_w=1e-3), dict(lambda_w=0.0, lambda_h=1e-3)],
)
def test_advise_bad_input(kw):
    with pytest.raises(NclabError):
        advise([10, 5], **kw)
    with pytest.raises(NclabError):
        advise([10], lam=0.1)
    with pytest.raises(NclabError):
        advise([10, 0], lam=0.1)


@pytest.mark.parametrize("lambda_b", [0.0, 0.05, 2.0])
def test_grouped_zero_threshold_matches_the_dense_one(lambda_b):
    from collections import Counter

    from nclab.ufm.advise import grouped_zero_threshold
    from nclab.ufm.theory import zero_threshold

    g = torch.Generator().manual_seed(1)
    for k in (2, 3, 7, 15):
        for _ in range(6):
            counts = (torch.randint(1, 6, (k,), generator=g) ** 2).tolist()
            ref = zero_threshold(counts, lambda_b)
            assert grouped_zero_threshold(Counter(counts), lambda_b) == pytest.approx(ref, rel=1e-11, abs=0)


def test_advise_cost_follows_distinct_counts_not_classes(capsys):
    import time

    from nclab.data.profiles import exponential

    counts = exponential(500, 20_000, 100)  # 20,000 classes, 496 distinct counts
    t0, c0 = time.perf_counter(), time.process_time()
    a = advise(counts, lambda_w=5e-4, lambda_h=5e-4)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert cpu < 4.0, f"advise on 20,000 classes took {cpu:.1f} s of CPU ({wall:.1f} s wall)"
    assert len(a.thresholds) == 20_000 and a.collapsed
    big_n = sum(counts)
    finite = {n: t for n, t in zip(counts, a.thresholds) if math.isfinite(t)}
    assert finite and all(t == pytest.approx(math.sqrt(n) / big_n) for n, t in finite.items())
    assert main(["ufm", "advise", "--counts", "500x10000,5x10000", "--lambda", "1e-6"]) == 0
    out = capsys.readouterr().out
    assert "one row per count" in out and len(out.splitlines()) < 15 and "YES" in out
