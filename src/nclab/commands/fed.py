"""Federated long-tailed training on Flower (FedAvg, FedAvg + fixed ETF, FedProx, FedGELA).

Config files merge left to right, then the key=value overrides.

Examples:
  nclab fed configs/recipes/fed_fmnist_pcdd2.yaml method=fedgela
  nclab fed configs/recipes/fed_fmnist_pcdd2.yaml method=fedavg rounds=5 seed=1 --run-dir runs/avg_s1
  nclab fed --resume runs/avg_s1

Needs the optional extra: pip install 'nclab[fed]'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nclab.errors import NclabError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config", nargs="?", help="YAML config files, merged left to right (configs/recipes/fed_*)"
    )
    p.add_argument("overrides", nargs="*", help="more config files, then key=value overrides, e.g. rounds=5")
    p.add_argument("--run-dir", help="run directory (default runs/fed/<config name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last round")


def run(args: argparse.Namespace) -> int:
    from nclab.fed.config import load_fed_config
    from nclab.fed.runner import FedRun, run_fed

    if args.resume:
        out = FedRun.resume(
            args.resume, args.overrides if args.config is None else [args.config, *args.overrides]
        )
    else:
        from nclab.compose import split_args

        files, overrides = split_args([args.config, *args.overrides] if args.config else [])
        if not files:
            raise NclabError("give config files (see configs/recipes/fed_*.yaml) or --resume RUN_DIR")
        cfg = load_fed_config(files, overrides)
        run_dir = Path(args.run_dir or cfg.run_dir or "runs/fed/" + "-".join(Path(f).stem for f in files))
        cfg.run_dir = str(run_dir)
        out = run_fed(cfg, run_dir)
    print(f"run directory: {out}")
    return 0
