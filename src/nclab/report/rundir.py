"""Read a run directory (docs/contracts.md) into plain Python objects; no plotting here."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nclab.errors import DataError
from nclab.rundir import RunDir, RunDirWarning, duplicate_evaluations

__all__ = ["Run", "RunDirWarning", "load_run"]


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

    def with_rcond(self, rcond: float) -> None:
        """Re-rank NC1 (``nc/nc1``, ``nc_test/nc1``) of every row at the rank tolerance ``rcond`` from the
        row's stored Sigma_B spectrum (:func:`nclab.metrics.functional.nc1_at`); other metrics keep their
        values. A row without a spectrum (written before nclab stored it) is a :class:`DataError`."""
        from nclab.metrics.functional import nc1_at

        for r in self.rows:
            for prefix in ("nc", "nc_test"):
                if f"{prefix}/nc1" not in r:
                    continue
                spec = {k: r.get(f"{prefix}/nc1_spectrum/{k}") for k in ("ratio", "term", "err")}
                if spec["ratio"] is None:
                    raise DataError(
                        f"{self.path / 'metrics.jsonl'}: epoch {r.get('epoch')} has no {prefix}/nc1_spectrum "
                        "(written by an older nclab): re-rank needs it; drop --rcond or set train.nc_rcond "
                        "and re-run"
                    )
                r[f"{prefix}/nc1"] = nc1_at(spec, rcond)


def load_run(path: str | Path) -> Run:
    """A run directory (:class:`nclab.rundir.RunDir`): needs metrics.jsonl and classes.json;
    geometry/ and config.yaml are optional. What is wrong but still drawable (a torn last row,
    duplicated evaluations, an unreadable geometry file) is warned about (:class:`RunDirWarning`) and
    listed in ``Run.problems``."""
    run = RunDir(path)
    p = run.path
    if not p.is_dir():
        raise DataError(f"{p} is not a directory")
    if not run.metrics_path.is_file() or not run.classes_path.is_file():
        raise DataError(
            f"{p} is not a run directory: it needs metrics.jsonl and classes.json (written by nclab train)"
        )
    rows, torn = run.rows()
    problems = []
    if torn:
        problems.append(
            f"{run.metrics_path}: the last line was torn (the run was killed while writing it); "
            f"drawing the {len(rows)} complete rows (nclab train/fed --resume {p} drops it)"
        )
    dup = duplicate_evaluations(rows)
    if dup:
        shown = ", ".join(f"epoch {e}" + (f" ({s})" if s else "") for e, s in dup[:5])
        problems.append(
            f"{run.metrics_path}: {len(dup)} evaluation(s) appear more than once ({shown}"
            f"{', ...' if len(dup) > 5 else ''}): two processes wrote this run directory; its curves "
            "are not one run's"
        )
    for msg in problems:
        warnings.warn(msg, RunDirWarning, stacklevel=2)
    classes = run.classes()
    geometry = run.geometry(problems)
    cfg = run.config_path.read_text() if run.config_path.is_file() else ""
    return Run(p, _name(run), rows, classes["counts"], classes["names"], geometry, cfg, problems)


def _name(run: RunDir) -> str:
    """A sweep's run is named by its axis choices and seed (``imbalance=100 method=ce seed=0``, from its
    ``sweep.json``); any other run by its folder."""
    try:
        info = run.read_json("sweep.json")
        parts = [f"{k}={v}" for k, v in info["axes"].items()] + [f"seed={info['seed']}"]
        return " ".join(parts)
    except (DataError, KeyError, TypeError, AttributeError):  # no (readable) sweep.json: the folder
        return run.path.name
