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
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nclab.errors import DataError

REQUIRED = ("features", "labels")
OPTIONAL = ("weights", "bias")


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


def load_feature_file(path: str | Path) -> dict[str, Any]:
    """Read a .npz or .pt feature file into a dict of tensors (numpy arrays accepted here only)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"cannot read {str(p)!r}: no such file")
    if p.suffix not in (".npz", ".pt", ".pth"):
        raise DataError(f"{str(p)!r}: unknown format {p.suffix!r}; use .npz or .pt")
    if not zipfile.is_zipfile(p):  # both numpy.savez and torch.save write zip archives
        writer = "numpy.savez" if p.suffix == ".npz" else "torch.save"
        raise DataError(
            f"cannot read {str(p)!r}: it is not a {p.suffix} (zip) archive, so it is truncated or in another "
            f"format; write it with {writer}(path, features=..., labels=...)"
        )
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        else:
            raw = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's weights-only unpickler refused an object
        raise DataError(
            f"cannot read {str(p)!r}: it holds Python objects that loading would have to execute; nclab "
            "loads only tensors: save a dict of tensors with torch.save"
        ) from None
    except ValueError as err:
        if "pickle" in str(err) or "Object arrays" in str(err):  # numpy: an object array in the archive
            raise DataError(
                f"cannot read {str(p)!r}: it holds object arrays (pickled Python objects), which nclab does "
                "not load; save numeric arrays (features float, labels int) with numpy.savez"
            ) from None
        raise DataError(f"cannot read {str(p)!r}: {type(err).__name__}: {err}") from None
    except Exception as err:  # a damaged archive
        raise DataError(f"cannot read {str(p)!r}: {type(err).__name__}: {err}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{str(p)!r} must hold a dict of arrays, got {type(raw).__name__}")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise DataError(
            f"{str(p)!r} lacks key(s) {', '.join(missing)}; it has: {', '.join(sorted(raw)) or 'none'}"
        )
    out = {}
    for k, v in raw.items():
        if isinstance(v, torch.Tensor):
            out[k] = v
            continue
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":  # strings, objects, complex, dates
            hint = (
                ": encode the class names as integers 0..K-1, e.g. "
                "names, labels = numpy.unique(labels, return_inverse=True)"
                if k == "labels" and a.dtype.kind in "USO"
                else ""
            )
            raise DataError(f"{str(p)!r}: {k!r} must be numeric, got dtype {a.dtype}{hint}")
        out[k] = torch.as_tensor(a)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


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
    width = max(map(len, keys))
    for k in keys:
        print(f"  {k:<{width}}  {_fmt(res.get(k))}")
    for flag in res.get("flags") or []:
        print(f"  flag: {flag} (docs/metrics.md)")
    for k, why in (res.get("undefined") or {}).items():
        print(f"  {k}: null ({why})")
    print("\n  group    classes  nc1      align_cos  w_cos    mean_cos  w_norm_rel")
    for g, v in res["groups"].items():
        print(
            f"  {g:<8} {v['num_classes']:>7}  {_fmt(v['nc1']):<8} {_fmt(v['align_cos']):<10} "
            f"{_fmt(v['w_cos']):<8} {_fmt(v['mean_cos']):<9} {_fmt(v['w_norm_rel'])}"
        )
    if res.get("align"):
        a = res["align"]
        print(
            f"\n  space alignment: mean principal angle {_fmt(a['principal_angle_mean_deg'])} deg, "
            f"error-exponent ratio min {_fmt(a['ee_ratio_min'])} mean {_fmt(a['ee_ratio_mean'])}, "
            f"few min {_fmt(a['ee_ratio_few_min'])}"
        )


def run(args: argparse.Namespace) -> int:
    from nclab.metrics import measure
    from nclab.progress import busy

    with busy(f"nclab measure: reading {args.file}"):  # large files: elapsed time on stderr
        data = load_feature_file(args.file)
    counts = data.get(args.counts_key)
    if args.counts_key != "counts" and counts is None:
        raise DataError(f"{args.file!r} has no key {args.counts_key!r}")
    feats = data["features"]
    if feats.is_floating_point() and feats.dtype not in (torch.float32, torch.float64):
        feats = feats.float()
    with busy(f"nclab measure: {feats.shape[0]} x {feats.shape[1]} features"):
        res = measure(
            feats,
            data["labels"],
            data.get("weights"),
            data.get("bias"),
            center=args.center,
            counts=None if counts is None else counts.tolist(),
            allow_missing=args.allow_missing,
            rcond=args.rcond,
        )
    if args.json:
        print(json.dumps(res))
    else:
        print_table(res)
    return 0
