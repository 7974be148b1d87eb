"""Fashion-MNIST-LT method grid: run it, then write its tables into docs/results.md from the run directories.

  python scripts/fmnist_table.py run   [--grid zoo spa etf] [--seeds 0 1 2] [--imbalance 100 1000] [--jobs 2]
  python scripts/fmnist_table.py table [--grid zoo spa etf] [--seeds 0 1 2] [--imbalance 100 1000]

Every run is `nclab train configs/fmnist_lt/ce.yaml` with the method's overrides plus the grid's budget
(GRID_BUDGET: epochs, a 10% per-class validation split for model selection, NC metrics at the last
epoch) in RUNS/if<IF>/<method>/seed<s>. Finished runs are skipped, so `run` can be stopped and started
again. The two-stage methods cRT, tau-norm and LWS re-use the CE run's backbone: its directory is copied
and resumed with the stage-2 method, which is exactly what a fresh run with the same seed would train.

`table` reports mean +- std over the seeds found of the test accuracy (all/many/medium/few) at the last
epoch and at the epoch with the best validation balanced accuracy ("selected"; the test set is never
used for selection), and the final NC1, NC3, mean align_cos, error-exponent ratio and the few-group
minority-collapse index. A cell is '-' where a quantity does not exist (no few-shot group at IF = 100).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from results import write_block  # scripts/results.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fmnist_lt" / "ce.yaml"
EPOCHS = 5
GRID_BUDGET = [
    f"train.epochs={EPOCHS}",
    "data.val_fraction=0.1",
    "train.nc_every=1000",
    "train.eval_batch_size=1000",
]
LAST = EPOCHS - 1  # 0-based index of the last epoch: DRW and DRS switch on there

# method -> overrides; a method whose overrides start with "@base" is a stage-2 method on base's backbone
ZOO = {
    "ce": [],
    "ce_ls": ["loss.kwargs.label_smoothing=0.1"],
    "focal": ["loss.name=focal", "loss.kwargs.gamma=1.0"],
    "cb": ["loss.name=cb", "loss.kwargs.beta=0.9999"],
    # LDAM as Cao et al. train it: cosine logits (their NormedLinear, tau = 1) scaled by s = 30 in the loss
    "ldam_drw": [
        "head.name=cosine",
        "head.kwargs.tau=1.0",
        "loss.name=ldam",
        f"loss.kwargs.drw_epoch={LAST}",
    ],
    "la": ["loss.name=la", "loss.kwargs.tau=1.0"],
    "balanced_softmax": ["loss.name=balanced_softmax"],
    "sampler_cb": ["sampler.name=class_balanced"],
    "sampler_sqrt": ["sampler.name=square_root"],
    "sampler_progressive": ["sampler.name=progressive"],
    "drs": ["sampler.name=drs", f"sampler.kwargs.start_epoch={LAST}"],
    "mixup": ["train.mixup_alpha=0.2"],
    "crt": ["@ce", "stage2.method=crt"],
    "tau_norm": ["@ce", "stage2.method=tau_norm"],
    "lws": ["@ce", "stage2.method=lws"],
    "wb": ["optim.weight_decay=5e-3", "optim.head_weight_decay=5e-3", "stage2.method=wb"],
    "fixed_etf_dr": [
        "model.feature_dim=10",
        "head.name=fixed_etf",
        "head.kwargs.normalize=true",
        "loss.name=dr",
    ],
}
SPA_BASES = ["ce", "la", "balanced_softmax", "ldam_drw"]
SPA = {f"{b}+{s}": ZOO[b] + [f"align.strategies=[{s}]"] for b in SPA_BASES for s in ("reg", "slerp", "proj")}
ETF = {"fixed_etf_ce": ["model.feature_dim=10", "head.name=fixed_etf"]}
GRIDS = {
    "zoo": list(ZOO),
    "spa": [m for b in SPA_BASES for m in [b, f"{b}+reg", f"{b}+slerp", f"{b}+proj"]],
    "etf": ["ce", "fixed_etf_ce", "fixed_etf_dr"],
}
ALL = {**ZOO, **SPA, **ETF}


def run_dir(runs: Path, imb: int, method: str, seed: int) -> Path:
    return runs / f"if{imb}" / method / f"seed{seed}"


def rows(rd: Path) -> list[dict]:
    f = rd / "metrics.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.is_file() else []


def finished(rd: Path, method: str) -> bool:
    r = rows(rd)
    two_stage = any(o.startswith("stage2.method=") and o != "stage2.method=none" for o in ALL[method])
    return bool(r) and r[-1].get("epoch") == EPOCHS and two_stage == ("stage" in r[-1])


def _overrides(method: str) -> list[str]:
    return [o for o in ALL[method] if not o.startswith("@")]


def launch(runs: Path, imb: int, method: str, seed: int) -> str:
    rd = run_dir(runs, imb, method, seed)
    if finished(rd, method):
        return f"skip {rd}"
    t0 = time.time()
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    import os

    env = {**os.environ, **env}
    nclab = [sys.executable, "-m", "nclab"]
    spec = ALL[method]
    if spec and spec[0].startswith("@"):  # stage 2 on the base run's backbone
        base = run_dir(runs, imb, spec[0][1:], seed)
        if not finished(base, spec[0][1:]):
            return f"wait {rd} (needs {base})"
        if rd.exists():
            shutil.rmtree(rd)
        shutil.copytree(base, rd)
        cfg = (rd / "config.yaml").read_text()
        method_name = next(o.split("=", 1)[1] for o in spec if o.startswith("stage2.method="))
        (rd / "config.yaml").write_text(cfg.replace("  method: none\n", f"  method: {method_name}\n", 1))
        cmd = nclab + ["train", "--resume", str(rd)]
    else:
        if rd.exists():
            shutil.rmtree(rd)
        rd.parent.mkdir(parents=True, exist_ok=True)
        over = [f"data.imbalance={imb}", f"train.seed={seed}", *GRID_BUDGET, *_overrides(method)]
        cmd = nclab + ["train", str(CONFIG), *over, "--run-dir", str(rd)]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    (rd.parent / f"seed{seed}.log").write_text(p.stdout + p.stderr)
    status = "ok" if p.returncode == 0 else f"FAILED rc={p.returncode}"
    return f"{status} {rd} {time.time() - t0:.0f} s"


def cmd_run(args) -> None:
    """Grid by grid in the order given, seed by seed inside a grid (so an interrupted grid still has
    whole seeds); stage-2 methods after their grid's first-stage runs."""
    jobs, seen = [], set()
    for g in args.grid:
        stage2 = [m for m in GRIDS[g] if ALL[m][:1] and ALL[m][0].startswith("@")]
        first = [m for m in GRIDS[g] if m not in stage2]
        for group in (first, stage2):
            for s in args.seeds:
                for i in args.imbalance:
                    for m in group:
                        if (i, m, s) not in seen:
                            seen.add((i, m, s))
                            jobs.append((i, m, s))
    with ThreadPoolExecutor(args.jobs) as ex:
        for msg in ex.map(lambda j: launch(args.runs, *j), jobs):
            print(msg, flush=True)


# -- tables ------------------------------------------------------------------------------------------
COLS = [
    ("acc/all", "acc all"),
    ("acc/many", "many"),
    ("acc/medium", "medium"),
    ("acc/few", "few"),
]
NC_COLS = [
    ("nc/nc1", "NC1"),
    ("nc/nc3", "NC3"),
    ("nc/per_class/align_cos", "mean align cos"),
    ("nc/align/ee_ratio_mean", "EE ratio"),
    ("nc/groups/few/minority_collapse", "MC few"),
]


def selected_row(r: list[dict]) -> dict:
    """The stage-1 epoch with the best validation balanced accuracy (the first on ties)."""
    cand = [x for x in r if "stage" not in x and x.get("val/balanced_acc") is not None]
    return max(cand, key=lambda x: x["val/balanced_acc"]) if cand else r[-1]


def _stat(vals: list) -> str:
    vals = [sum(v) / len(v) if isinstance(v, list) and v else v for v in vals]  # per-class -> mean
    vals = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return "-"
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return f"{m:.4f} ± {sd:.4f}" if abs(m) < 10 else f"{m:.3g} ± {sd:.2g}"


def _pct(vals: list) -> str:
    vals = [v for v in vals if isinstance(v, (int, float))]
    if not vals:
        return "-"
    m = 100 * sum(vals) / len(vals)
    sd = 100 * math.sqrt(sum((v - m / 100) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return f"{m:.2f} ± {sd:.2f}"


def table(runs: Path, imb: int, methods: list[str], seeds: list[int]) -> str:
    head = ["method", "seeds"]
    head += [f"{t} (last)" for _, t in COLS] + [f"{t} (selected)" for _, t in COLS[:1]]
    head += [f"{t} (selected)" for _, t in COLS[3:]] + [t for _, t in NC_COLS]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in methods:
        runs_m = [rows(run_dir(runs, imb, m, s)) for s in seeds]
        runs_m = [r for r in runs_m if r and r[-1].get("epoch") == EPOCHS]
        if not runs_m:
            continue
        last = [r[-1] for r in runs_m]
        # stage-2 methods act on the last epoch's backbone: their "selected" row is their own row
        sel = [r[-1] if "stage" in r[-1] else selected_row(r) for r in runs_m]
        cells = [m, str(len(runs_m))]
        cells += [_pct([x.get(k) for x in last]) for k, _ in COLS]
        cells += [_pct([x.get(k) for x in sel]) for k, _ in COLS[:1] + COLS[3:]]
        cells += [_stat([x.get(k) for x in last]) for k, _ in NC_COLS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(runs: Path, imb: int, seeds: list[int]) -> str:
    """Each SpA variant minus its baseline, paired by seed (mean +- std over the seeds both have)."""
    keys = [
        ("acc/all", "d acc all", 100),
        ("acc/few", "d few", 100),
        ("nc/per_class/align_cos", "d mean align cos", 1),
        ("nc/align/ee_ratio_mean", "d EE ratio", 1),
    ]
    lines = [
        "| variant | pairs | " + " | ".join(t for _, t, _ in keys) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for b in SPA_BASES:
        for strat in ("reg", "slerp", "proj"):
            diffs: dict[str, list[float]] = {k: [] for k, _, _ in keys}
            n = 0
            for s in seeds:
                ra, rb = rows(run_dir(runs, imb, f"{b}+{strat}", s)), rows(run_dir(runs, imb, b, s))
                if not (ra and rb and ra[-1].get("epoch") == EPOCHS and rb[-1].get("epoch") == EPOCHS):
                    continue
                n += 1
                for k, _, scale in keys:
                    va, vb = ra[-1].get(k), rb[-1].get(k)
                    va = sum(va) / len(va) if isinstance(va, list) else va
                    vb = sum(vb) / len(vb) if isinstance(vb, list) else vb
                    if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
                        diffs[k].append(scale * (va - vb))
            if n == 0:
                continue
            cells = []
            for k, _, _ in keys:
                d = diffs[k]
                if not d:
                    cells.append("-")
                    continue
                m = sum(d) / len(d)
                sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1)) if len(d) > 1 else 0.0
                cells.append(
                    f"{m:+.2f} ± {sd:.2f}" if abs(m) >= 0.01 or sd >= 0.01 else f"{m:+.4f} ± {sd:.4f}"
                )
            lines.append(f"| {b}+{strat} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_table(args) -> None:
    out = []
    for g in args.grid:
        for imb in args.imbalance:
            out.append(f"### {TITLES[g]}, IF = {imb}\n\n{table(args.runs, imb, GRIDS[g], args.seeds)}\n")
            if g == "spa":
                out.append(
                    f"Paired by seed, variant minus baseline (accuracy in points), IF = {imb}:\n\n"
                    f"{paired(args.runs, imb, args.seeds)}\n"
                )
    write_block(args.out, "fmnist_table", "\n".join(out))


TITLES = {
    "zoo": "Long-tailed methods",
    "spa": "Space alignment on four baselines",
    "etf": "Learnable head (d = 128) vs fixed ETF (d = K = 10)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["run", "table"])
    ap.add_argument("--grid", nargs="+", default=["zoo", "spa", "etf"], choices=list(GRIDS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--imbalance", nargs="+", type=int, default=[100, 1000])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "fmnist_grid")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="docs/results.md to update (default: print)")
    args = ap.parse_args()
    cmd_run(args) if args.action == "run" else cmd_table(args)


if __name__ == "__main__":
    main()
