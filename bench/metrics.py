"""Benchmark of the full metric set: the two-pass and the one-pass path against their floors, one process.

For each (N, d, K) it prints, timed in the same run on the same data:

- floor: one ``X.T @ X`` (N, d) -- what the one-pass second moment costs at least;
- logits: one ``X @ W.T`` (N, d) x (d, K) -- a logits pass;
- one-pass: ``measure(..., path="one_pass")`` (FeatureStats + SecondPass), and its peak extra memory;
- two-pass: ``measure(..., path="two_pass")`` (class sums, then one product with [P | W^T]), and its
  peak extra memory; ``auto`` is the path ``measure`` picks by default.

Targets (issue 19): two-pass within 6x of one logits pass at K <= d/4 and within 2.5x of the floor at
every shape; at least 3x faster than one-pass at (50k, 512, 100), 1.5x at (60k, 1024, 500), and
never slower. Peak memory: resident-set high-water mark above the data (CPU, /proc/self/status VmHWM
after resetting it), or ``torch.cuda.max_memory_allocated`` above the data (CUDA).

Usage: python bench/metrics.py [--quick] [--device cpu|cuda] [--dtype float32|float64] [--repeat R]
       [--threads T] [--shapes N,d,K ...]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import time
import warnings

import torch

from nclab.metrics import measure

warnings.simplefilter("ignore")  # one-sample classes in the random labels warn

SHAPES = [(50_000, 512, 10), (50_000, 512, 100), (60_000, 1024, 500), (116_000, 2048, 1000)]
QUICK = [(5_000, 128, 10), (20_000, 256, 100)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, repeat: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def _timed_peak(fn, repeat: int, device: torch.device) -> tuple[float, float]:
    """Best time of ``fn()`` over ``repeat`` runs and its peak memory above what was in use before
    each run, in MB (nan where not measurable)."""
    best, peak = float("inf"), float("nan")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        else:
            _trim()
            base = -1
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
                base = _status_kb("VmRSS")
            except OSError:
                pass
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
        if device.type == "cuda":
            mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        else:
            mb = (_status_kb("VmHWM") - base) / 1024 if base >= 0 else float("nan")
        peak = mb if math.isnan(peak) else max(peak, mb)
    return best, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeat", type=int, default=2, help="best of R (1 where the floor takes > 5 s)")
    ap.add_argument("--shapes", nargs="*", help="N,d,K triples (default: the four of issue 19)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    if args.shapes:
        sizes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
    else:
        sizes = QUICK if args.quick else SHAPES
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, dtype {args.dtype}"
    )
    header = (
        f"{'N':>7} {'d':>5} {'K':>5} | {'floor XtX':>9} {'logits':>8} | {'one-pass':>8} {'/floor':>6} "
        f"{'MB':>6} | {'two-pass':>8} {'/floor':>6} {'/logit':>6} {'MB':>6} | {'speedup':>7} | auto"
    )
    print(header)
    print("-" * len(header))
    for n, d, k in sizes:
        _row(n, d, k, dtype, device, args.repeat)


def _row(n: int, d: int, k: int, dtype: torch.dtype, device: torch.device, repeat: int) -> None:
    """Time one shape and print its row (its tensors are freed on return)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, k, (n,), generator=g)
    y[:k] = torch.arange(k)
    centres = torch.randn(k, d, generator=g, dtype=dtype) * 3
    h = (centres[y] + torch.randn(n, d, generator=g, dtype=dtype)).to(device)
    y = y.to(device)
    w = torch.randn(k, d, generator=g, dtype=dtype).to(device)
    b = torch.randn(k, generator=g, dtype=dtype).to(device)
    del centres
    _trim()
    floor = _time(lambda: h.T @ h, 1, device)
    rep = repeat if floor < 5.0 else 1
    if rep > 1:
        floor = min(floor, _time(lambda: h.T @ h, rep - 1, device))
    logits = _time(lambda: h @ w.T, max(rep, 2), device)
    t1, m1 = _timed_peak(lambda: measure(h, y, w, b, path="one_pass"), rep, device)
    t2, m2 = _timed_peak(lambda: measure(h, y, w, b, path="two_pass"), rep, device)
    auto = measure(h[: 4 * k], y[: 4 * k], w, b)["path"] if n >= 4 * k else "-"
    print(
        f"{n:>7} {d:>5} {k:>5} | {floor:>8.3f}s {logits:>7.3f}s | {t1:>7.3f}s {t1 / floor:>6.2f} "
        f"{m1:>6.0f} | {t2:>7.3f}s {t2 / floor:>6.2f} {t2 / logits:>6.2f} {m2:>6.0f} | "
        f"{t1 / t2:>6.2f}x | {auto}",
        flush=True,
    )


if __name__ == "__main__":
    main()
