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
from typing import TYPE_CHECKING

from nclab.errors import NclabError

if TYPE_CHECKING:
    from nclab.train import Config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config files, merged left to right (see configs/)")
    p.add_argument("overrides", nargs="*", help="more config files, then dotted key=value overrides")
    p.add_argument("--run-dir", help="run directory (default runs/<config names joined by ->)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")


def run(args: argparse.Namespace) -> int:
    from nclab.train import Trainer, load_config

    if args.resume:
        run_dir = Path(args.resume)
        cfg = resume_config(run_dir, ([args.config] if args.config else []) + list(args.overrides))
    else:
        from nclab.compose import split_args

        files, overrides = split_args([args.config, *args.overrides] if args.config else [])
        if not files:
            raise NclabError("give config files (see configs/) or --resume RUN_DIR")
        cfg = load_config(files, overrides)
        run_dir = Path(args.run_dir or "runs/" + "-".join(Path(f).stem for f in files))
    out = Trainer(cfg, run_dir, resume=bool(args.resume)).fit()  # fit releases the run lock
    print(f"run directory: {out}")
    return 0


def resume_config(run_dir: Path, extra: list[str]) -> Config:
    """The config a run used (its ``config.yaml`` without ``meta``), then ``extra`` files/overrides.

    Raises:
        DataError: ``config.yaml`` is missing or not a YAML mapping (with what to do).
        ConfigError: it holds keys or values the schema rejects.
    """
    import tempfile

    from omegaconf import OmegaConf

    from nclab.errors import ConfigError
    from nclab.rundir import read_config
    from nclab.train import load_config

    path = run_dir / "config.yaml"
    raw = read_config(run_dir)
    raw.pop("meta", None)
    with tempfile.TemporaryDirectory(prefix="nclab-resume-") as tmp:  # nothing is written to the run dir
        p = Path(tmp) / "config.yaml"
        p.write_text(OmegaConf.to_yaml(raw))
        try:
            return load_config(p, extra)
        except ConfigError as err:
            raise ConfigError(f"cannot resume from {path}: {err}") from None
