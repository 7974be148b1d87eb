"""Benchmarks of the theory lab, each with a baseline measured in the same run.

1. ``nearest_etf`` forward and backward at (d, K) in {(64, 10), (512, 100), (2048, 1000)}; baseline:
   one ``torch.linalg.svd`` of the same d x K matrix (the floor of the exact solution).
   Target: forward at (512, 100) under 20 ms.
2. UFM full-batch GD steps per second at N = 10k, d = 512, K = 100; baseline: the step's matrix
   products alone (H W^T, and the two gradient products). Target: one step within 1.5x of them.
3. Convex program (FISTA) solve time at K = 100 and 1000 (K = 1000 capped at 100 iterations; its
   KKT residual is printed); baseline: one K x K SVD (the per-iteration floor).

Usage: python bench/geometry.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from nclab.geometry import etf_classifier, nearest_etf
from nclab.ufm import UFM, solve_convex


def _best(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_nearest(quick: bool) -> None:
    print("\n1. nearest_etf (float32)")
    print(f"{'d':>6} {'K':>6} | {'svd floor':>10} | {'forward':>10} {'x':>5} | {'fwd+bwd':>10} {'x':>5}")
    sizes = [(64, 10), (512, 100)] + ([] if quick else [(2048, 1000)])
    for d, k in sizes:
        y = torch.randn(d, k)
        floor = _best(lambda: torch.linalg.svd(y, full_matrices=False))
        fwd = _best(lambda: nearest_etf(y))
        yg = y.clone().requires_grad_(True)

        def fb():
            etf_classifier(nearest_etf(yg)).sum().backward()

        both = _best(fb)
        print(
            f"{d:>6} {k:>6} | {floor * 1e3:>8.2f}ms | {fwd * 1e3:>8.2f}ms {fwd / floor:>5.2f} | {both * 1e3:>8.2f}ms {both / floor:>5.2f}"
        )


def bench_ufm(quick: bool) -> None:
    n, d, k = (2000, 128, 20) if quick else (10_000, 512, 100)
    print(f"\n2. UFM GD step (float64), N={n}, d={d}, K={k}")
    counts = [n // k] * k
    ufm = UFM(counts, d, lambda_w=5e-3, lambda_h=5e-3)
    steps = 20
    # fit(steps) minus fit(0): the steps alone, without the initialisation and the final NC record
    t_fit = (
        _best(lambda: ufm.fit(steps=steps, lr=0.5), repeat=2)
        - _best(lambda: ufm.fit(steps=0, lr=0.5), repeat=2)
    ) / steps
    w = torch.randn(k, d, dtype=torch.float64)
    h = torch.randn(n, d, dtype=torch.float64)
    g = torch.randn(n, k, dtype=torch.float64)

    def products():
        h @ w.T  # logits
        g.T @ h  # dW
        g @ w  # dH

    t_mm = _best(products)
    print(
        f"   matrix products {t_mm * 1e3:.2f} ms | one step {t_fit * 1e3:.2f} ms | ratio {t_fit / t_mm:.2f}"
    )


def bench_convex(quick: bool) -> None:
    print("\n3. convex program (FISTA, float64)")
    print(f"{'K':>6} | {'one SVD':>10} | {'solve':>10} {'iters':>6} {'kkt':>9}")
    for k in [100] if quick else [100, 1000]:
        counts = [int(1000 * 0.97**i) + 5 for i in range(k)]
        x = torch.randn(k, k, dtype=torch.float64)
        floor = _best(lambda: torch.linalg.svd(x), repeat=3)
        t0 = time.perf_counter()
        r = solve_convex(counts, 1e-5, tol=1e-7, max_iter=2000 if k <= 100 else 100)
        t = time.perf_counter() - t0
        print(f"{k:>6} | {floor * 1e3:>8.2f}ms | {t:>9.2f}s {r.iterations:>6} {r.kkt:>9.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    bench_nearest(args.quick)
    bench_ufm(args.quick)
    bench_convex(args.quick)


if __name__ == "__main__":
    main()
