"""Neural-collapse metrics of a saved feature file.

FILE is .npz or .pt holding `features` (N x d), `labels` (N) and optionally `weights` (K x d),
`bias` (K) and `counts` (K, training counts for the many/medium/few groups).

Examples:
  nclab measure feats.npz
  nclab measure feats.pt --center balanced --json > nc.json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nclab.textfmt import num, text_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".npz or .pt file with features, labels [, weights, bias, counts]")
    p.add_argument("--center", choices=["weighted", "balanced"], default="weighted", help="global mean")
    p.add_argument("--counts-key", default="counts", help="key of the training counts (default: counts)")
    p.add_argument("--allow-missing", action="store_true", help="measure even if a class has no sample")
    p.add_argument(
        "--rcond",
        type=float,
        default=None,
        help="rank tolerance of Sigma_B^+ relative to its largest eigenvalue (default: the exact pinv)",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON (only that on stdout)")


def print_table(res: dict[str, Any]) -> None:
    """A readable summary of a ``measure`` result."""
    print(
        f"classes {res['num_classes']} (present {res['num_present']})  dim {res['dim']}  "
        f"samples {res['num_samples']}  center {res['center']}  rank(Sigma_B) {res['rank_sigma_b']}"
    )
    keys = [  # readable in every regime first; the exact pinv NC1 next, with what it rests on
        "nc1_cdnv",
        "nc1_stable",
        "nc1",
        "nc1_rank",
        "nc1_min_eig_ratio",
        "nc1_weighted_sb",
        "nc2_equinorm",
        "nc2_equiangle",
        "nc2_maxangle",
        "nc2_etf",
        "nc3",
        "nc3_zhu",
        "nc4",
        "nc4_bias",
    ]
    print(text_table(None, [[k, num(res.get(k))] for k in keys], align="<<"))
    for flag in res.get("flags") or []:
        print(f"  flag: {flag} (docs/metrics.md)")
    for k, why in (res.get("undefined") or {}).items():
        print(f"  {k}: null ({why})")
    cols = ["nc1", "align_cos", "w_cos", "mean_cos", "w_norm_rel"]
    rows = [[g, str(v["num_classes"])] + [num(v[c]) for c in cols] for g, v in res["groups"].items()]
    print("\n" + text_table(["group", "classes", *cols], rows, align="<><<<<<", widths=[7, 7, 7, 9, 7, 8]))
    if res.get("align"):
        a = res["align"]
        print(
            f"\n  space alignment: mean principal angle {num(a['principal_angle_mean_deg'])} deg, "
            f"error-exponent ratio min {num(a['ee_ratio_min'])} mean {num(a['ee_ratio_mean'])}, "
            f"few min {num(a['ee_ratio_few_min'])}"
        )


def run(args: argparse.Namespace) -> int:
    from nclab.metrics.feature_file import measure_file

    res = measure_file(
        args.file,
        center=args.center,
        counts_key=args.counts_key,
        allow_missing=args.allow_missing,
        rcond=args.rcond,
    )
    if args.json:
        print(json.dumps(res))
    else:
        print_table(res)
    return 0
