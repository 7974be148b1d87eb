"""Read a run directory (docs/contracts.md) into plain Python objects; no plotting here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nclab.errors import DataError


@dataclass
class Run:
    path: Path
    name: str
    rows: list[dict[str, Any]]
    counts: list[int]
    class_names: list[str]
    geometry: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    config_text: str = ""

    def series(self, key: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for r in self.rows:
            if "stage" in r:  # a two-stage row is not an epoch of the curve
                continue
            v = r.get(key)
            if isinstance(v, (int, float)) and v is not None:
                xs.append(r["epoch"])
                ys.append(float(v))
        return xs, ys

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}


def load_run(path: str | Path) -> Run:
    """A run directory: needs metrics.jsonl and classes.json; geometry/ and config.yaml are optional."""
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"{p} is not a directory")
    if not (p / "metrics.jsonl").is_file() or not (p / "classes.json").is_file():
        raise DataError(
            f"{p} is not a run directory: it needs metrics.jsonl and classes.json (written by nclab train)"
        )
    rows = []
    for i, line in enumerate((p / "metrics.jsonl").read_text().splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{p / 'metrics.jsonl'} line {i + 1} is not JSON: {err}") from None
    try:
        classes = json.loads((p / "classes.json").read_text())
        counts = [int(c) for c in classes["counts"]]
    except (KeyError, ValueError, TypeError) as err:
        raise DataError(f"{p / 'classes.json'} is unreadable: {err}") from None
    names = classes.get("names") or [str(i) for i in range(len(counts))]
    geometry = {}
    gdir = p / "geometry"
    if gdir.is_dir():
        for f in sorted(gdir.glob("*.npz"), key=lambda q: int(q.stem) if q.stem.isdigit() else -1):
            if f.stem.isdigit():
                with np.load(f) as z:
                    geometry[int(f.stem)] = {k: z[k] for k in z.files}
    cfg = (p / "config.yaml").read_text() if (p / "config.yaml").is_file() else ""
    return Run(p, p.name, rows, counts, names, geometry, cfg)
