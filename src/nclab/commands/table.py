"""Tables of mean +- std over seeds from run directories (a sweep's --out, or any run directories).

Examples:
  nclab table runs/fmnist_etf
  nclab table runs/fmnist_etf --group-by imbalance method --metrics acc/all acc/few acc/all@selected
  nclab table runs/fmnist_spa --paired-against align=none --format json
  nclab table runs/yaras_fmnist --best-of lr=min:nc/nc1    # each head at its own best learning rate
  nclab table runs/fmnist_etf --out docs/results.md --block fmnist_etf

Markdown shows accuracies in percent; csv and json keep the units of metrics.jsonl (json: a list of rows
with the axis choices, "seeds", and per metric {"mean", "std", "n"}, sample std with ddof 1, or null).
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("--group-by", nargs="+", metavar="AXIS", help="axes to group by (default: all)")
    p.add_argument(
        "--metrics", nargs="+", metavar="KEY", help="metrics.jsonl keys, KEY@selected for one column"
    )
    p.add_argument(
        "--at", choices=["last", "selected"], default="last", help="the evaluation each run is read at"
    )
    p.add_argument(
        "--paired-against", metavar="AXIS=CHOICE", help="add per-seed differences against a choice"
    )
    p.add_argument(
        "--best-of",
        metavar="AXIS=min:KEY",
        help="keep, per group of the other axes, the choice of AXIS with the lowest (min) or highest (max) "
        "mean KEY over the seeds all its choices ran",
    )
    p.add_argument("--format", choices=["md", "csv", "json"], default="md")
    p.add_argument("--out", help="write to this file (with --block: only between its block markers)")
    p.add_argument(
        "--block", metavar="NAME", help="rewrite <!-- NAME:begin --> ... <!-- NAME:end --> in --out"
    )


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from nclab.errors import NclabError
    from nclab.sweep.table import aggregate, cost_line, find_runs, format_rows, load_runs, write_block

    if args.block and not args.out:
        raise NclabError("--block needs --out FILE")
    metrics = [m for x in (args.metrics or []) for m in x.split(",") if m] or None
    runs, incomplete = load_runs(find_runs(args.runs))
    if incomplete:
        print(
            f"nclab table: left out {len(incomplete)} incomplete runs, e.g. {incomplete[0]}", file=sys.stderr
        )
    from nclab.rundir import duplicate_evaluations

    for r in runs:  # two writers leave every evaluation twice: the numbers are not one run's
        dup = duplicate_evaluations(r.rows)
        if dup:
            print(
                f"nclab table: warning: {r.dir / 'metrics.jsonl'} holds {len(dup)} evaluation(s) more than "
                f"once (first: epoch {dup[0][0]}): two processes wrote this run directory",
                file=sys.stderr,
            )
    rows = aggregate(
        runs,
        group_by=args.group_by,
        metrics=metrics,
        at=args.at,
        paired_against=args.paired_against,
        best_of=args.best_of,
    )
    group_by = args.group_by or list(dict.fromkeys(a for r in runs for a in r.axes))
    text = format_rows(rows, group_by, metrics or _default(), args.format)
    cost = cost_line(runs) if args.format == "md" else None
    if cost:
        text += "\n\n" + cost
    if not args.out:
        print(text)
    elif args.block:
        write_block(args.out, args.block, text)
        print(f"wrote block {args.block} of {args.out}")
    else:
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out}")
    return 0


def _default() -> list[str]:
    from nclab.sweep.table import DEFAULT_METRICS

    return DEFAULT_METRICS
