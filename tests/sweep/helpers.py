"""Shared by the sweep and table tests: a hand-written run directory, a run's files and metrics."""

import hashlib
import json
from pathlib import Path

from nclab.rundir import read_rows

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "recipes" / "synthetic.yaml"
TIMING = ("wall_time", "time", "elapsed", "seconds", "throughput")


def files_of(d: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``d`` (but the lock): its hash and modification time."""
    return {
        str(p.relative_to(d)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def metrics_of(d: Path) -> list[dict]:
    """The run's metrics rows without the timing keys (which differ between identical runs)."""
    rows, torn = read_rows(d / "metrics.jsonl")
    assert not torn
    return [{k: v for k, v in r.items() if not any(t in k for t in TIMING)} for r in rows]


def write_run(d, rows, epochs=2, seed=0, axes=None):
    """A training run directory holding ``rows``: complete when the last row is epoch ``epochs``."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(f"train: {{epochs: {epochs}, seed: {seed}}}\nstage2: {{method: none}}\n")
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if axes is not None:
        (d / "sweep.json").write_text(json.dumps({"axes": axes, "seed": seed, "order": [0]}))
    return d
