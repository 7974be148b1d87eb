"""Train a model on long-tailed data, tracking neural collapse every evaluation.

Config files (fragments: configs/recipes, configs/methods, configs/align) merge left to right, then the
key=value overrides.

Examples:
  nclab train configs/recipes/synthetic.yaml
  nclab train configs/recipes/fmnist_lt.yaml configs/methods/ce.yaml train.epochs=5 --run-dir runs/fmnist_ce
  nclab train configs/recipes/cifar100_lt.yaml configs/methods/ldam_drw.yaml configs/align/slerp.yaml data.imbalance=50
  nclab train --resume runs/fmnist_ce
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nclab.errors import NclabError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config files, merged left to right (see configs/)")
    p.add_argument("overrides", nargs="*", help="more config files, then dotted key=value overrides")
    p.add_argument("--run-dir", help="run directory (default runs/<config names joined by ->)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")


def run(args: argparse.Namespace) -> int:
    from nclab.train import Trainer, load_config

    if args.resume:
        extra = ([args.config] if args.config else []) + list(args.overrides)
        trainer = Trainer.resume(args.resume, extra)
    else:
        from nclab.compose import split_args

        files, overrides = split_args([args.config, *args.overrides] if args.config else [])
        if not files:
            raise NclabError("give config files (see configs/) or --resume RUN_DIR")
        run_dir = Path(args.run_dir or "runs/" + "-".join(Path(f).stem for f in files))
        trainer = Trainer(load_config(files, overrides), run_dir)
    print(f"run directory: {trainer.fit()}")  # fit releases the run lock
    return 0
