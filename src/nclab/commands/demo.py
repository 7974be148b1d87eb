"""The main job: a short tour of what nclab measures, predicts and induces, written to --out.

1. measure: a long-tailed feature file with partly collapsed few-shot classes (`nclab measure`);
2. predict: the minority-collapse figure of Hong and Ling (`nclab ufm reproduce hong-ling`);
3. induce: a short Fashion-MNIST-LT run (IF = 100) of a cross-entropy baseline and the same with
   SpA-SLERP (synthetic data with a message when Fashion-MNIST is absent);
4. the HTML report of both runs (`nclab report`). About 3-6 minutes on a 2-core CPU.
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
    p.add_argument("--epochs", type=int, default=2, help="epochs of each training run (default 2)")
    p.add_argument(
        "--data",
        choices=["auto", "fmnist", "synthetic"],
        default="auto",
        help="training data: Fashion-MNIST when installed (auto), or synthetic",
    )


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
    from nclab.extras import require

    require("matplotlib", what="the demo (its figure and report)")  # before any work is done
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

    from nclab.ufm.reproduce import reproduce

    print("\n== 2. predict: minority collapse in the unconstrained-features model")
    figs = reproduce("hong-ling", out / "ufm", quick=True)
    print(f"figure: {figs[0]}")

    print("\n== 3. induce: long-tailed training, baseline and SpA-SLERP")
    from nclab.data.fashion_mnist import default_root
    from nclab.train import Trainer, load_config

    have_fmnist = (default_root() / "train-images-idx3-ubyte.gz").is_file()
    if args.data == "fmnist" and not have_fmnist:
        from nclab.errors import DataError

        raise DataError(
            "Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or use --data synthetic"
        )
    if have_fmnist and args.data != "synthetic":
        base = [
            "data.name=fmnist",
            "data.imbalance=100",
            "model.name=cnn_small",
            "model.feature_dim=64",
            "optim.lr=0.05",
            "train.batch_size=128",
            "sched.warmup_epochs=0",
        ]
    else:
        if args.data == "auto":
            print("Fashion-MNIST not found (apt-get install dataset-fashion-mnist): using synthetic data")
        base = ["data.name=synthetic", "data.imbalance=20", "model.name=mlp", "model.feature_dim=16"]
    base += [f"train.epochs={args.epochs}", f"train.seed={args.seed}"]
    run_dirs = []
    for name, extra in (
        ("baseline_ce", []),
        ("ce_spa_slerp", ["align.strategies=[slerp]"]),
    ):
        rd = out / "runs" / name
        if (rd / "metrics.jsonl").exists():
            import shutil

            shutil.rmtree(rd)
        print(f"-- {name}")
        Trainer(load_config(None, base + extra), rd).fit()
        run_dirs.append(rd)

    from nclab.report import build_report

    print("\n== 4. report")
    rep = build_report(run_dirs, out / "report.html")
    print(f"\nreport: {rep.resolve()}")
    return 0
