"""Benchmark of the measurement engine against its floor and a naive baseline, in one process.

For each (N, d, K) it prints: the floor (one X.T @ X on the same data), nclab's one-pass metrics
(FeatureStats + nc_metrics), nclab's full set (``measure``: both passes, nc4 and per-class nc1), and a
straightforward two-pass implementation with a Python loop over classes (per-class covariances, numpy
pinv, explicit distances). Targets (issue 2): one-pass set within 2x the floor, full set within 3x.

Usage: python bench/metrics.py [--quick] [--dtype float32|float64] [--repeat R]
"""

from __future__ import annotations

import argparse
import time

import torch

from nclab.metrics import FeatureStats, measure, nc_metrics


def _time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def naive(h: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Two passes with a Python loop over classes (how NC metrics are usually computed)."""
    k = w.shape[0]
    mu_g = h.mean(0)
    means, covs = [], []
    for c in range(k):
        hc = h[y == c]
        m = hc.mean(0)
        means.append(m)
        r = hc - m
        covs.append(r.T @ r)
    m = torch.stack(means)
    mt = m - mu_g
    sw = sum(covs) / len(y)
    sb = mt.T @ mt / k
    nc1 = torch.trace(sw @ torch.linalg.pinv(sb, hermitian=True)) / k
    lin = (h @ w.T + b).argmax(1)
    ncc = torch.cdist(h, m).argmin(1)
    return {"nc1": float(nc1), "nc4": float((lin != ncc).float().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    sizes = (
        [(5000, 128, 10), (20000, 256, 100)] if args.quick else [(50_000, 512, 100), (116_000, 2048, 1000)]
    )
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, dtype {args.dtype}")
    header = f"{'N':>7} {'d':>5} {'K':>5} | {'floor X^T X':>11} | {'one-pass':>9} {'x':>5} | {'full':>8} {'x':>5} | {'naive':>8} {'x':>5}"
    print(header)
    print("-" * len(header))
    for n, d, k in sizes:
        g = torch.Generator().manual_seed(0)
        y = torch.randint(0, k, (n,), generator=g)
        y[:k] = torch.arange(k)
        centres = torch.randn(k, d, generator=g, dtype=dtype) * 3
        h = centres[y] + torch.randn(n, d, generator=g, dtype=dtype)
        w = torch.randn(k, d, generator=g, dtype=dtype)
        b = torch.randn(k, generator=g, dtype=dtype)
        floor = _time(lambda: h.T @ h, args.repeat)

        def one_pass():
            st = FeatureStats(k, d)
            for i in range(0, n, 16384):
                st.update(h[i : i + 16384], y[i : i + 16384])
            return nc_metrics(st, w, b)

        t1 = _time(one_pass, args.repeat)
        tf = _time(lambda: measure(h, y, w, b), args.repeat)
        tn = _time(lambda: naive(h, y, w, b), 1)
        print(
            f"{n:>7} {d:>5} {k:>5} | {floor:>10.3f}s | {t1:>8.3f}s {t1 / floor:>5.2f} | "
            f"{tf:>7.3f}s {tf / floor:>5.2f} | {tn:>7.3f}s {tn / floor:>5.2f}"
        )


if __name__ == "__main__":
    main()
