"""Write a self-contained HTML report (and PNGs) from one or more run directories.

Examples:
  nclab report runs/fmnist_ce
  nclab report runs/fmnist_ce runs/fmnist_ce_slerp --out reports/compare.html
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by nclab train or nclab fed"
    )
    p.add_argument(
        "--out", help="HTML file (default: RUN_DIR/report.html for one run, report.html otherwise)"
    )
    p.add_argument(
        "--rcond",
        type=float,
        help="NC1 at this rank tolerance of Sigma_B^+ (eigenvalues <= rcond x the largest dropped), "
        "re-ranked from each row's stored spectrum; default: as each run measured it",
    )


def run(args: argparse.Namespace) -> int:
    from nclab.report import build_report

    out = args.out or (
        str(Path(args.run_dirs[0]) / "report.html") if len(args.run_dirs) == 1 else "report.html"
    )
    import sys
    import warnings

    from nclab.report.rundir import RunDirWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunDirWarning)
        path = build_report(args.run_dirs, out, rcond=args.rcond)
    for w in caught:  # a torn last row, duplicated evaluations: drawn, but said
        if issubclass(w.category, RunDirWarning):
            print(f"nclab report: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(f"report: {path.resolve()}")
    return 0
