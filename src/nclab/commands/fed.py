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
    p.add_argument("config", nargs="?", help="YAML config files, merged left to right (configs/recipes/fed_*)")
    p.add_argument("overrides", nargs="*", help="more config files, then key=value overrides, e.g. rounds=5")
    p.add_argument("--run-dir", help="run directory (default runs/fed/<config name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last round")


def run(args: argparse.Namespace) -> int:
    from nclab.errors import ConfigError
    from nclab.fed.config import load_fed_config
    from nclab.rundir import read_config

    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.yaml"
        read_config(run_dir)  # a clear error for a missing or corrupt config.yaml
        try:
            cfg = load_fed_config(
                cfg_path, args.overrides if args.config is None else [args.config, *args.overrides]
            )
        except ConfigError as err:
            raise ConfigError(f"cannot resume from {cfg_path}: {err}") from None
    else:
        from nclab.compose import split_args

        files, overrides = split_args([args.config, *args.overrides] if args.config else [])
        if not files:
            raise NclabError("give config files (see configs/recipes/fed_*.yaml) or --resume RUN_DIR")
        cfg = load_fed_config(files, overrides)
        run_dir = Path(args.run_dir or cfg.run_dir or "runs/fed/" + "-".join(Path(f).stem for f in files))
    cfg.run_dir = str(run_dir)
    from nclab.fed.runner import run_fed

    out = run_fed(cfg, run_dir, resume=bool(args.resume))
    print(f"run directory: {out}")
    return 0
