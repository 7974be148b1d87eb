"""The main job: a short tour of what nclab measures and predicts, written to --out.

It builds a long-tailed synthetic feature set whose few-shot classes are partly collapsed, saves it
as a feature file, measures it (the same as `nclab measure`), and, when the theory lab is available,
solves the unconstrained-features model for the same counts and compares the geometry with its
predictions (simplex ETF, SELI, minority collapse). Everything runs on the CPU in seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    p.add_argument("--seed", type=int, default=0)


def make_demo_features(seed: int = 0) -> dict[str, np.ndarray]:
    """Features of a 10-class exponential profile (IF = 100), few-shot classes partly collapsed."""
    from nclab.data.profiles import exponential
    from nclab.geometry import simplex_etf

    counts = exponential(500, 10, 100)
    g = torch.Generator().manual_seed(seed)
    k, d = len(counts), 32
    etf = simplex_etf(k, d, generator=g, dtype=torch.float64)
    means = etf.clone()
    tail = [c for c, n in enumerate(counts) if n < 20]
    means[tail] = 0.3 * etf[tail] + 0.7 * etf[tail].mean(0)  # minority collapse toward one direction
    labels = torch.repeat_interleave(torch.arange(k), torch.tensor(counts))
    feats = 4.0 * means[labels] + 0.5 * torch.randn(len(labels), d, generator=g, dtype=torch.float64)
    w = 4.0 * means + 0.3 * torch.randn(k, d, generator=g, dtype=torch.float64)
    return {
        "features": feats.float().numpy(),
        "labels": labels.numpy(),
        "weights": w.float().numpy(),
        "bias": np.zeros(k, dtype=np.float32),
        "counts": np.asarray(counts),
    }


def run(args: argparse.Namespace) -> int:
    from nclab.commands.measure import print_table
    from nclab.metrics import measure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = make_demo_features(args.seed)
    path = out / "demo_features.npz"
    np.savez(path, **data)
    print(f"== 1. measure: a long-tailed feature file ({path})\n")
    t = {k: torch.from_numpy(v) for k, v in data.items()}
    res = measure(t["features"], t["labels"], t["weights"], t["bias"], counts=data["counts"].tolist())
    print_table(res)
    (out / "measure.json").write_text(json.dumps(res, indent=1))
    print(f"\nfull result: {out / 'measure.json'}  (the same as `nclab measure {path} --json`)")
    return 0
