"""Read a run directory (docs/contracts.md) into plain Python objects; no plotting here."""

from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nclab import rundir
from nclab.errors import DataError


class RunDirWarning(UserWarning):
    """A run directory is readable but not as its writer promised (torn last row, duplicated rows)."""


@dataclass
class Run:
    path: Path
    name: str
    rows: list[dict[str, Any]]
    counts: list[int]
    class_names: list[str]
    geometry: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    config_text: str = ""
    #: what is wrong with the run directory but still drawable (a torn last row, duplicated evaluations)
    problems: list[str] = field(default_factory=list)

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
    rows, torn = rundir.read_rows(p / "metrics.jsonl")
    problems = []
    if torn:
        problems.append(
            f"{p / 'metrics.jsonl'}: the last line was torn (the run was killed while writing it); "
            f"drawing the {len(rows)} complete rows (nclab train/fed --resume {p} drops it)"
        )
    dup = rundir.duplicate_evaluations(rows)
    if dup:
        shown = ", ".join(f"epoch {e}" + (f" ({s})" if s else "") for e, s in dup[:5])
        problems.append(
            f"{p / 'metrics.jsonl'}: {len(dup)} evaluation(s) appear more than once ({shown}"
            f"{', ...' if len(dup) > 5 else ''}): two processes wrote this run directory; its curves "
            "are not one run's"
        )
    for msg in problems:
        warnings.warn(msg, RunDirWarning, stacklevel=2)
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
                try:
                    with np.load(f, allow_pickle=False) as z:
                        geometry[int(f.stem)] = {k: z[k] for k in z.files}
                except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                    msg = f"{f} is unreadable ({type(err).__name__}); its geometry is not drawn"
                    problems.append(msg)
                    warnings.warn(msg, RunDirWarning, stacklevel=2)
    cfg = (p / "config.yaml").read_text() if (p / "config.yaml").is_file() else ""
    return Run(p, p.name, rows, counts, names, geometry, cfg, problems)
