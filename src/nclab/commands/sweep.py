"""Run a grid of experiments from a sweep spec: skip complete runs, resume partial ones, report failures.

Examples:
  nclab sweep configs/sweeps/fmnist_etf.yaml --out runs/fmnist_etf --dry-run
  nclab sweep configs/sweeps/fmnist_etf.yaml --out runs/fmnist_etf --jobs 2
  nclab sweep configs/sweeps/fmnist_etf.yaml --out runs/fmnist_etf --only seed=0 --only method=ce
  nclab sweep configs/sweeps/fmnist_etf.yaml --out runs/fmnist_etf --engine ray --address 10.0.0.1:6379

The spec names base configs, overrides, axes of choices, seeds and resources (docs/sweep.md). Each run
lands in OUT/<axis>=<choice>/.../seed=<s>/ with its log next to it (seed=<s>.log). Running the same
command again trains only what is missing. Exit code 0 when every run is complete, 1 otherwise.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep spec (YAML; see configs/sweeps/)")
    p.add_argument("--out", required=True, help="folder that holds the runs")
    p.add_argument("--jobs", type=int, default=None, help="runs at a time (local: default 1)")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="local processes or Ray tasks")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and what each needs, run nothing")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="AXIS=CHOICE",
        help="run only the runs with this choice (or seed=N); repeatable: several values of one axis "
        "match any of them, different axes all (the sources of after-runs come along)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nclab.errors import NclabError
    from nclab.sweep import expand, load_spec, run_sweep, summary
    from nclab.sweep.engine import payload
    from nclab.sweep.execute import command_line, plan
    from nclab.sweep.spec import select

    spec = load_spec(args.spec)
    if args.jobs is not None and args.jobs < 1:
        raise NclabError(f"--jobs must be >= 1, got {args.jobs}")
    if args.address and args.engine != "ray":
        raise NclabError("--address is for --engine ray")
    runs = expand(spec, Path(args.out))
    if args.only:
        runs = select(spec, runs, args.only)
    _validate(spec, runs)
    if args.dry_run:
        for r in runs:
            p = payload(r, spec)
            action = plan(p)
            cmd = "" if action == "complete" else " ".join(command_line(p, action)[2:])
            src = f" (from {r.source.label})" if r.source else ""
            print(f"{action.split()[0]:8s} {r.label}{src}  {cmd}".rstrip())
        print(f"{len(runs)} runs")
        return 0
    results = run_sweep(runs, spec, engine=args.engine, jobs=args.jobs, address=args.address)
    print(summary(results))
    return 0 if all(r["status"] != "failed" for r in results) else 1


def _validate(spec, runs) -> None:
    """Compose every run that starts from its own config (errors before anything runs)."""
    if spec.command == "train":
        from nclab.train.config import load_config as load
    else:
        from nclab.fed.config import load_fed_config as load
    from nclab.errors import ConfigError

    for r in runs:
        if r.source is None:
            try:
                load(r.files, r.overrides)
            except ConfigError as err:
                raise ConfigError(f"run {r.label}: {err}") from None
