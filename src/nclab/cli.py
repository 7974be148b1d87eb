"""The ``nclab`` command line: one entry point, one module per subcommand.

Each subcommand lives in ``nclab.commands.<name>`` and defines ``add_arguments(parser)`` and
``run(args) -> int``; its module docstring's first line is the help line. Modules are imported only
when their subcommand runs, so ``nclab --help`` stays fast. Any :class:`~nclab.errors.NclabError`
is printed as one line on stderr and exits with code 2; so is a missing optional extra
(:mod:`nclab.extras`: "reports need matplotlib: pip install 'nclab[report]'").
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from nclab import __version__
from nclab.errors import NclabError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "measure": ("nclab.commands.measure", "neural-collapse metrics of a saved feature file"),
    "ufm": ("nclab.commands.ufm", "unconstrained-features model: solve, reproduce figures, advise"),
    "train": ("nclab.commands.train", "train on long-tailed data with NC tracking, checkpoints and resume"),
    "report": ("nclab.commands.report", "HTML report (figures + tables) from run directories"),
    "demo": ("nclab.commands.demo", "the main job: a short tour written to --out"),
    "fed": ("nclab.commands.fed", "federated long-tailed training on Flower (FedAvg, FedProx, FedGELA)"),
    "sweep": ("nclab.commands.sweep", "run a grid of experiments from a sweep spec (local processes or Ray)"),
    "table": ("nclab.commands.table", "mean +- std tables over seeds from run directories"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommand modules are imported to declare their arguments)."""
    parser = argparse.ArgumentParser(
        prog="nclab",
        description="Neural collapse under class imbalance: measure, predict, induce.",
    )
    parser.add_argument("--version", action="version", version=f"nclab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(
            name,
            help=help_line,
            description=(mod.__doc__ or help_line).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except NclabError as err:
        print(f"nclab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        from nclab.extras import missing_extra

        msg = missing_extra(err)
        if msg is None:
            raise
        print(f"nclab {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nclab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`nclab ... | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 141
