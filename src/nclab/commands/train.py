"""Train a model on long-tailed data, tracking neural collapse every evaluation.

Examples:
  nclab train configs/synthetic/smoke.yaml
  nclab train configs/fmnist_lt/ce.yaml train.epochs=5 --run-dir runs/fmnist_ce
  nclab train --resume runs/fmnist_ce
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nclab.errors import NclabError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.epochs=3")
    p.add_argument("--run-dir", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from nclab.train import Trainer, load_config

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise NclabError(f"cannot resume: {run_dir / 'config.yaml'} does not exist")
        raw = OmegaConf.load(run_dir / "config.yaml")
        raw.pop("meta", None)
        tmp = run_dir / ".resume_config.yaml"
        tmp.write_text(OmegaConf.to_yaml(raw))
        extra = ([args.config] if args.config else []) + list(args.overrides)
        cfg = load_config(tmp, extra)
        tmp.unlink()
    else:
        if not args.config:
            raise NclabError("give a config file (see configs/) or --resume RUN_DIR")
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir or f"runs/{Path(args.config).stem}")
    out = Trainer(cfg, run_dir, resume=bool(args.resume)).fit()
    print(f"run directory: {out}")
    return 0
