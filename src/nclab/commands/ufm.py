"""The unconstrained-features model: solve one problem, reproduce a paper's figure, get advice.

Examples:
  nclab ufm --counts 500x5,100x5 --dim 20 --lambda-w 5e-3 --lambda-h 5e-4
  nclab ufm --counts 500x5,100x5 --dim 20 --lambda-w 5e-3 --lambda-h 5e-4 --solver convex --json
  nclab ufm reproduce hong-ling --out figures/
  nclab ufm advise --counts 500x5,100x5 --lambda-w 5e-3 --lambda-h 5e-4
  nclab ufm advise --counts 5000x4,3000x2,1000x4 --lambda 1e-3 --json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from nclab.errors import NclabError

#: above this many classes ``advise`` prints one row per count instead of one per class
MAX_CLASS_ROWS = 40


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.allow_abbrev = False  # `advise --lambda` must not read as an abbreviation of --lambda-w
    p.add_argument("--counts", help="class counts, e.g. 500x5,100x5")
    p.add_argument("--dim", type=int, help="feature dimension d (default K)")
    p.add_argument(
        "--lambda-w", type=float, default=5e-3, help="classifier weight decay (lambda/2 convention)"
    )
    p.add_argument("--lambda-h", type=float, default=5e-3, help="feature weight decay")
    p.add_argument("--lambda-b", type=float, default=0.0, help="bias weight decay")
    p.add_argument("--loss", choices=["ce", "mse"], default="ce")
    p.add_argument("--solver", choices=["gd", "convex"], default="gd")
    p.add_argument("--steps", type=int, default=10000, help="GD steps")
    p.add_argument("--lr", type=float, default=1.0, help="GD step size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON only")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    r = sub.add_parser("reproduce", help="reproduce a paper's UFM figure (PNG + CSV)")
    r.add_argument("paper", choices=["zhu", "seli", "hong-ling", "yaras", "spa"])
    r.add_argument("--out", default="ufm_figures", help="output directory")
    r.add_argument("--quick", action="store_true", help="smaller grids (seconds)")
    a = sub.add_parser("advise", help="weight decay and oversampling against minority collapse")
    a.add_argument("--counts", dest="advise_counts", metavar="COUNTS", help="class counts, e.g. 500x5,100x5")
    a.add_argument(
        "--run", metavar="RUN_DIR", help="a run directory (classes.json counts, config.yaml weight decays)"
    )
    a.add_argument("--lambda", dest="lam", metavar="L", type=float, help="the convex program's lambda")
    a.add_argument("--lambda-w", dest="a_lambda_w", metavar="W", type=float, help="classifier weight decay")
    a.add_argument(
        "--lambda-h", dest="a_lambda_h", metavar="H", type=float, help="feature (backbone) weight decay"
    )
    a.add_argument(
        "--lambda-b",
        dest="a_lambda_b",
        metavar="B",
        type=float,
        default=0.0,
        help="bias penalty of the program",
    )
    a.add_argument("--json", dest="a_json", action="store_true", help="print the Advice fields as JSON")


def _solve(args: argparse.Namespace) -> int:
    from nclab.data.profiles import parse_counts
    from nclab.textfmt import inline, num, text_table
    from nclab.ufm.solver import solve

    if not args.counts:
        raise NclabError("give --counts (e.g. 500x5,100x5), or an action: reproduce, advise")
    sol = solve(
        parse_counts(args.counts),
        args.dim,
        loss=args.loss,
        lambda_w=args.lambda_w,
        lambda_h=args.lambda_h,
        lambda_b=args.lambda_b,
        solver=args.solver,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
    )
    out = sol.to_dict()
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"UFM {args.loss.upper()}: K={len(sol.counts)} d={sol.dim} N={sum(sol.counts)} solver={args.solver} "
        f"objective={sol.objective:.6g}"
    )
    print("  " + inline(out["nc"]))
    header = ["count", "classes", "||w_k||", "||h_k||", "cos(w) in group", "cos(h) in group"]
    rows = [
        [str(g["count"]), str(len(g["classes"]))]
        + [num(g[key]) for key in ("w_norm", "h_norm", "w_cos", "h_cos")]
        for g in out["groups"]
    ]
    print("\n" + text_table(header, rows, align=">><<<<", widths=[5, 7, 8, 8, 15]))
    if out["seli"]:
        print("\n  distance to SELI: " + inline(out["seli"]))
    return 0


def _advise(args: argparse.Namespace) -> int:
    from nclab.data.profiles import parse_counts
    from nclab.textfmt import num, text_table
    from nclab.ufm.advise import advise

    lw, lh, lam = args.a_lambda_w, args.a_lambda_h, args.lam
    if args.run and args.advise_counts:
        raise NclabError("give --counts or --run RUN_DIR, not both (--run reads the counts from the run)")
    if args.run:
        counts, lw_run, lh_run = _read_run(Path(args.run))
        lw = lw if lw is not None else lw_run
        lh = lh if lh is not None else lh_run
    elif args.advise_counts:
        counts = parse_counts(args.advise_counts)
    else:
        raise NclabError("give --counts or --run RUN_DIR")
    if lam is None and (lw is None or lh is None):
        raise NclabError("give --lambda, or --lambda-w and --lambda-h")
    adv = advise(
        counts,
        lam=lam,
        lambda_w=None if lam is not None else lw,
        lambda_h=None if lam is not None else lh,
        lambda_b=args.a_lambda_b,
    )
    if args.a_json:
        print(json.dumps(adv.to_dict()))
        return 0
    collapsed = {k for g in adv.collapsed for k in g}
    print(
        f"lambda = {num(adv.lam)}   (minority collapse from {num(adv.max_safe_lam)}, "
        f"Z = 0 from {num(adv.zero_lam)})"
    )

    def cells(k: int) -> list[str]:  # collapsed, threshold, advised count of class k
        advised = adv.advised_counts[k] if adv.advised_counts else None
        return ["YES" if k in collapsed else "no", num(adv.thresholds[k]), num(advised)]

    head = ["collapsed", "threshold", "advised count"]
    if len(adv.counts) <= MAX_CLASS_ROWS:
        rows = [[str(k), str(n), *cells(k)] for k, n in enumerate(adv.counts)]
        print("\n" + text_table(["class", "count", *head], rows, align=">>>><", widths=[5, 5, 9, 9]))
    else:  # one row per count: the theory is per group, and K rows would bury the answer
        print(f"\n  {len(adv.counts)} classes, one row per count (--json lists every class)")
        first: dict[int, int] = {}
        for k, n in enumerate(adv.counts):
            first.setdefault(n, k)
        sizes = Counter(adv.counts)
        rows = [[str(n), str(sizes[n]), *cells(k)] for n, k in sorted(first.items(), reverse=True)]
        print("\n" + text_table(["count", "classes", *head], rows, align=">>>><", widths=[5, 7, 9, 9]))
    if not adv.collapsed:
        print("\nno class is collapsed at this lambda: no oversampling needed")
    elif adv.oversample is None:
        print(
            "\nno oversampling of the collapsed classes removes the collapse at this lambda: lower the weight decay"
        )
    else:
        print(
            f"\noversample the collapsed classes x{num(adv.oversample, digits=3)} (counts rounded up above)"
        )
    if adv.max_safe_weight_decay:
        s = adv.max_safe_weight_decay
        print(
            f"safe weight decay: scale both by < {num(s['scale'], digits=3)}  "
            f"(lambda_w < {num(s['lambda_w'], digits=3)}, lambda_h < {num(s['lambda_h'], digits=3)})"
        )
    return 0


def _read_run(run: Path) -> tuple[list[int], float | None, float | None]:
    """Counts from classes.json, weight decays from config.yaml (:class:`nclab.rundir.RunDir`)."""
    from nclab.rundir import RunDir

    rd = RunDir(run)
    return rd.classes()["counts"], *rd.weight_decays()


def run(args: argparse.Namespace) -> int:
    if args.action == "reproduce":
        from nclab.ufm.reproduce import reproduce

        files = reproduce(args.paper, args.out, quick=args.quick)
        print("\nwrote: " + ", ".join(str(f) for f in files))
        return 0
    if args.action == "advise":
        return _advise(args)
    return _solve(args)
