"""Federated Fashion-MNIST grid (issue 10): run it, then write its tables into docs/results.md.

  python scripts/fed_table.py run   [--settings pcdd2 pcdd3 lt100_pcdd2] [--methods ...] [--seeds 0 1 2]
  python scripts/fed_table.py table [--out docs/results.md]

Every run is `nclab fed configs/fed/fmnist_<setting>_<method>.yaml seed=<s>` plus the grid's budget
(GRID_BUDGET: the number of rounds) in RUNS/<setting>/<method>/seed<s>. Finished runs are skipped and a
run with a checkpoint is resumed (``--resume``), so `run` can be stopped and started again.

`table` reports mean +- std over the seeds found of the last round's generic accuracy (the aggregated
model with the global head on the balanced test set; all/many/medium/few for the long-tailed profile),
the personal accuracy, the missing-class cosine (learnable heads only), NC1 and NC3 of the aggregated
model's training features, and FedGELA minus each baseline paired by seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from results import write_block  # scripts/results.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 5
GRID_BUDGET = [f"rounds={ROUNDS}"]
SETTINGS = {
    "pcdd2": "PCDD, 2 classes per client, balanced Fashion-MNIST",
    "pcdd3": "PCDD, 3 classes per client, balanced Fashion-MNIST",
    "lt100_pcdd2": "PCDD, 2 classes per client, long-tailed global profile (IF = 100)",
}
METHODS = ["fedavg", "fedprox", "fedavg_etf", "fedgela"]
# extra variants, run only when named (--methods): config name and overrides per setting
# fedgela_cpc: FedGELA with C = classes per client, so that a client of a balanced PCDD partition
# scales its held classes by exactly 1 (FedAvg + ETF with the missing classes' rows zeroed)
VARIANTS = {"fedgela_cpc": ("fedgela", lambda setting: [f"gela_c={setting[-1]}"])}
ALL_METHODS = METHODS + list(VARIANTS)


def run_dir(runs: Path, setting: str, method: str, seed: int) -> Path:
    return runs / setting / method / f"seed{seed}"


def rows(rd: Path) -> list[dict]:
    f = rd / "metrics.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.is_file() else []


def last_row(rd: Path) -> dict | None:
    """The final round's metrics of a finished run, else None."""
    r = rows(rd)
    return r[-1] if r and r[-1].get("round") == ROUNDS else None


def finished(rd: Path) -> bool:
    return last_row(rd) is not None


def launch(runs: Path, setting: str, method: str, seed: int) -> str:
    rd = run_dir(runs, setting, method, seed)
    if finished(rd):
        return f"skip {rd}"
    t0 = time.time()
    env = {**os.environ, "TQDM_DISABLE": "1"}
    nclab = [sys.executable, "-m", "nclab", "fed"]
    if (rd / "checkpoints" / "last.pt").is_file():
        cmd = nclab + ["--resume", str(rd), *GRID_BUDGET]
    else:
        if rd.exists():
            shutil.rmtree(rd)
        rd.parent.mkdir(parents=True, exist_ok=True)
        base, extra = (
            (VARIANTS[method][0], VARIANTS[method][1](setting)) if method in VARIANTS else (method, [])
        )
        cfg = ROOT / "configs" / "fed" / f"fmnist_{setting}_{base}.yaml"
        cmd = nclab + [str(cfg), f"seed={seed}", *GRID_BUDGET, *extra, "--run-dir", str(rd)]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    (rd.parent / f"seed{seed}.log").write_text(p.stdout + p.stderr)
    status = "ok" if p.returncode == 0 else f"FAILED rc={p.returncode}"
    return f"{status} {rd} {time.time() - t0:.0f} s"


def cmd_run(args) -> None:
    """Seed by seed (an interrupted grid still has whole seeds), one run at a time: the simulation
    already runs two Flower clients in parallel on this 2-core CPU."""
    for s in args.seeds:
        for setting in args.settings:
            for m in args.methods:
                print(launch(args.runs, setting, m, s), flush=True)


# -- tables ------------------------------------------------------------------------------------------
def _mean_sd(vals: list, scale: float = 1.0) -> tuple[float, float] | None:
    vals = [scale * v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return None
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, sd


def _fmt(ms: tuple[float, float] | None, pct: bool) -> str:
    if ms is None:
        return "-"
    m, sd = ms
    if pct:
        return f"{m:.2f} ± {sd:.2f}"
    return f"{m:.4f} ± {sd:.4f}" if abs(m) < 100 else f"{m:.3g} ± {sd:.2g}"


def _last(runs: Path, setting: str, method: str, seeds: list[int]) -> dict[int, dict]:
    last = {s: last_row(run_dir(runs, setting, method, s)) for s in seeds}
    return {s: row for s, row in last.items() if row is not None}


def table(runs: Path, setting: str, seeds: list[int]) -> str:
    lt = setting.startswith("lt")
    acc_cols = [("acc/all", "generic acc")]
    if lt:
        acc_cols += [("acc/many", "many"), ("acc/medium", "medium"), ("acc/few", "few")]
    acc_cols += [("fed/personal_acc", "personal acc")]
    other = [("fed/missing_class_cos", "missing-class cos"), ("nc/nc1", "NC1"), ("nc/nc3", "NC3")]
    head = ["method", "seeds"] + [t for _, t in acc_cols] + [t for _, t in other]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in ALL_METHODS:
        last = _last(runs, setting, m, seeds)
        if not last:
            continue
        cells = [m, str(len(last))]
        cells += [_fmt(_mean_sd([x.get(k) for x in last.values()], 100.0), True) for k, _ in acc_cols]
        cells += [_fmt(_mean_sd([x.get(k) for x in last.values()]), False) for k, _ in other]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(runs: Path, setting: str, seeds: list[int]) -> str:
    """FedGELA minus each other method, paired by seed (generic and personal accuracy, points)."""
    keys = [("acc/all", "d generic acc"), ("fed/personal_acc", "d personal acc")]
    if setting.startswith("lt"):
        keys.insert(1, ("acc/few", "d few"))
    lines = [
        "| FedGELA minus | pairs | " + " | ".join(t for _, t in keys) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    gela = _last(runs, setting, "fedgela", seeds)
    for base in [m for m in ALL_METHODS if m != "fedgela"]:
        other = _last(runs, setting, base, seeds)
        common = sorted(set(gela) & set(other))
        if not common:
            continue
        cells = []
        for k, _ in keys:
            d = [
                gela[s].get(k) - other[s].get(k)
                for s in common
                if isinstance(gela[s].get(k), (int, float)) and isinstance(other[s].get(k), (int, float))
            ]
            ms = _mean_sd(d, 100.0)
            cells.append("-" if ms is None else f"{ms[0]:+.2f} ± {ms[1]:.2f}")
        lines.append(f"| {base} | {len(common)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_table(args) -> None:
    out = []
    for setting in args.settings:
        out.append(f"### {SETTINGS[setting]}\n\n{table(args.runs, setting, args.seeds)}\n")
        out.append(f"Paired by seed (points):\n\n{paired(args.runs, setting, args.seeds)}\n")
    write_block(args.out, "fed_table", "\n".join(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["run", "table"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=ALL_METHODS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "fed_grid")
    ap.add_argument("--out", type=Path, default=None, help="docs/results.md to update (default: print)")
    args = ap.parse_args()
    cmd_run(args) if args.action == "run" else cmd_table(args)


if __name__ == "__main__":
    main()
