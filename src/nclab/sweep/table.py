"""Tables from run directories: group runs by their sweep axes, mean +- sample std (ddof 1) over seeds.

Runs are read through :class:`nclab.rundir.RunDir` (``metrics.jsonl``, ``config.yaml``); a run's axis
choices and seed come from its ``sweep.json`` (written by ``nclab sweep``), or, for a plain run directory,
the axis ``run`` = its name and the seed of its config. Only complete runs count
(:meth:`~nclab.rundir.RunDir.is_complete`), and runs that stopped diverged
(:meth:`~nclab.rundir.RunDir.is_diverged`).

The row of a run that a metric is read from is its last evaluation (``--at last``) or the one selected on
the validation split (``--at selected``: the first stage-1 row with the best ``val/balanced_acc``; a
run that ended with a stage-2 row is read at that row, which acts on the last backbone). ``KEY@selected``
or ``KEY@last`` picks the row for one column, ``KEY@epoch=N`` the row of epoch (round) N, and
``KEY@mean=A..B`` the mean of the rows of epochs (rounds) A to B (a noisy federated curve's level). A
per-class list is read as its mean. A run that diverged (a row flagged ``diverged``, or a non-finite loss
in the row read) shows as ``diverged``.

``best_of`` (``--best-of AXIS=min:KEY`` or ``AXIS=max:KEY``) keeps, in each group of the other axes, the
one choice of AXIS whose mean KEY is lowest (highest) over the seeds that all its choices ran (each
choice's own seeds where they share none): a parameter tuned per arm, as a user would tune it, with the
chosen value in the AXIS column (its row then shows every seed of that choice). Ties go to the choice
first in the sweep's order; a choice with a diverged run or no value is never chosen. With
``paired_against`` too, each arm at its best choice is paired with the reference arm at the reference's
own best choice (each tuned, as a user would tune each).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nclab import rundir, textfmt
from nclab.errors import ConfigError, NclabError
from nclab.rundir import RunDir
from nclab.sweep.execute import RECORD

__all__ = ["RunRecord", "aggregate", "cost_line", "find_runs", "format_rows", "load_runs", "write_block"]

DEFAULT_METRICS = ["acc/all", "acc/many", "acc/medium", "acc/few", "nc/nc1", "nc/nc3"]


@dataclass
class RunRecord:
    dir: Path
    axes: dict[str, str]
    seed: int | None
    order: tuple = ()
    rows: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] | None = None  # sweep.json's "cost": seconds, cpus, gpus, device


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories (holding ``metrics.jsonl``) given directly or found below the given folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise NclabError(f"{p} does not exist (give run directories or a sweep's --out)")
        if RunDir(p).metrics_path.is_file():
            out.append(p)
        else:
            out += sorted(f.parent for f in p.rglob(rundir.METRICS))
    return list(dict.fromkeys(out))


def _spec_order(rec: dict[str, Any], specs: dict[str, Any]) -> tuple | None:
    """The record's choice indices in the axes of the spec it names, as that spec reads now (``None`` when
    the spec cannot be read or no longer holds the record's choices): a choice added to an axis after a run
    was recorded shifts the indices its ``order`` holds."""
    from nclab.sweep.spec import load_spec

    path = rec.get("spec")
    if not isinstance(path, str):
        return None
    if path not in specs:
        try:
            specs[path] = load_spec(path).axes
        except (NclabError, OSError):
            specs[path] = None
    axes, chosen = specs[path], rec.get("axes")
    if axes is None or not isinstance(chosen, dict) or set(axes) != set(chosen):
        return None
    try:
        return tuple(list(axes[a]).index(chosen[a]) for a in axes)
    except ValueError:
        return None


def load_runs(dirs: list[Path]) -> tuple[list[RunRecord], list[Path]]:
    """(complete runs, incomplete run directories), the runs in the sweep's order: the order of the choices
    in the spec each record names, read now (relative paths from the working directory, as
    ``nclab sweep`` writes them), else the order the record kept."""
    runs, incomplete = [], []
    specs: dict[str, Any] = {}
    for d in dirs:
        run = RunDir(d)
        if not run.is_complete() and not run.is_diverged():  # a diverged run shows as such
            incomplete.append(d)
            continue
        rows, _ = run.rows()
        if (d / RECORD).is_file():
            rec = run.read_json(RECORD)
            cost = rec.get("cost") if isinstance(rec.get("cost"), dict) else None
            order = _spec_order(rec, specs) or tuple(rec.get("order") or ())
            runs.append(RunRecord(d, dict(rec["axes"]), rec.get("seed"), order, rows, cost))
        else:
            runs.append(RunRecord(d, {"run": d.name}, run.seed(), (), rows))
    runs.sort(key=lambda r: (r.order, r.seed if r.seed is not None else -1, str(r.dir)))
    return runs, incomplete


def _row(rows: list[dict[str, Any]], at: str) -> dict[str, Any] | None:
    """The evaluation row a metric is read at: ``last``, ``selected`` (best ``val/balanced_acc``),
    ``epoch=N`` (the training row of epoch/round N; None when the run has none), or ``mean=A..B`` (each
    metric's mean over the training rows of epochs/rounds A to B; None without such rows)."""
    if at.startswith("epoch="):
        n = int(at.partition("=")[2])
        return next((x for x in rows if "stage" not in x and x.get("epoch") == n), None)
    if at.startswith("mean="):
        lo, _, hi = at.partition("=")[2].partition("..")
        win = [x for x in rows if "stage" not in x and int(lo) <= x.get("epoch", -1) <= int(hi)]
        if not win:
            return None
        keys = dict.fromkeys(k for x in win for k in x)
        out: dict[str, Any] = {}
        for k in keys:  # a key some row of the window lacks, or holds a non-finite value, is undefined
            vals = [_value(x, k) for x in win]
            out[k] = None if any(v is None for v in vals) else sum(vals) / len(vals)  # type: ignore[arg-type]
        return out
    if at == "last" or "stage" in rows[-1]:
        return rows[-1]
    cand = [x for x in rows if "stage" not in x and isinstance(x.get("val/balanced_acc"), (int, float))]
    return max(cand, key=lambda x: x["val/balanced_acc"]) if cand else rows[-1]


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if isinstance(v, list):
        v = [x for x in v if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)]
        v = sum(v) / len(v) if v else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _diverged(rows: list[dict[str, Any]], row: dict[str, Any]) -> bool:
    if any(r.get("diverged") for r in rows):
        return True
    return any(k.startswith("loss/") and _value(row, k) is None for k in row)


#: two-sided 95% quantiles of Student's t with 1..30 degrees of freedom (beyond: the normal's 1.96)
_T975 = tuple(
    float(t)
    for t in "12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 "
    "2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042".split()
)


def _stats(vals: list[float]) -> dict[str, Any] | None:
    """Mean, sample std (ddof 1) and the half-width ``ci95`` of the 95% Student-t interval of the mean,
    ``t_{0.975, n-1} * std / sqrt(n)`` (None for one value)."""
    if not vals:
        return None
    n = len(vals)
    m = sum(vals) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    ci = None if sd is None else (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * sd / math.sqrt(n)
    return {"mean": m, "std": sd, "n": n, "ci95": ci}


def _parse(metric: str, at: str) -> tuple[str, str]:
    key, _, which = metric.partition("@")
    which = which or at
    epoch = which.startswith("epoch=") and which.partition("=")[2].isdigit()
    lo, dots, hi = which.partition("=")[2].partition("..")
    window = which.startswith("mean=") and dots and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi)
    if which not in ("last", "selected") and not epoch and not window:
        raise ConfigError(f"metric {metric!r}: the row must be @last, @selected, @epoch=N or @mean=A..B (A <= B)")
    return key, which


def aggregate(
    runs: list[RunRecord],
    *,
    group_by: list[str] | None = None,
    metrics: list[str] | None = None,
    at: str = "last",
    paired_against: str | None = None,
    best_of: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of mean/std/n per metric, one per group (and, with ``paired_against`` = ``AXIS=CHOICE``, one
    per non-baseline group of per-seed differences against the run with ``AXIS=CHOICE``); with
    ``best_of`` = ``AXIS=min:KEY`` (or ``max``), only the groups of the best choice of AXIS (module doc).

    Raises:
        ConfigError: an unknown axis in ``group_by``, ``paired_against`` or ``best_of``, or a malformed
            metric or ``best_of``.
    """
    if not runs:
        raise NclabError("no complete runs found")
    axes = list(dict.fromkeys(a for r in runs for a in r.axes))
    group_by = axes if group_by is None else group_by
    unknown = [a for a in group_by if a not in axes]
    if unknown:
        raise ConfigError(f"unknown axis {unknown[0]!r} in --group-by (the runs have: {', '.join(axes)})")
    metrics = metrics or DEFAULT_METRICS
    parsed = [_parse(m, at) for m in metrics]

    def group_of(r: RunRecord) -> tuple[str, ...]:
        return tuple(r.axes.get(a, "-") for a in group_by)

    def read(r: RunRecord) -> tuple[bool, list[float | None]]:
        div = False
        vals = []
        for key, which in parsed:
            row = _row(r.rows, which)
            if row is None:  # no evaluation at that epoch
                vals.append(None)
                continue
            div = div or _diverged(r.rows, row)
            vals.append(_value(row, key))
        return div, vals

    groups: dict[tuple, list[tuple[bool, list]]] = {}
    for r in runs:
        groups.setdefault(group_of(r), []).append(read(r))
    out = [_summarise(dict(zip(group_by, g)), members, metrics, "seeds") for g, members in groups.items()]
    best: dict[tuple, str] = {}  # other axes' choices -> the best choice of the best-of axis
    bi = 0
    if best_of:
        best, bi = _best_choices(best_of, group_by, at, group_of, runs)
    if paired_against:
        axis, _, base = paired_against.partition("=")
        if axis not in axes or not base:
            raise ConfigError(
                f"--paired-against must be AXIS=CHOICE with an axis of the runs ({', '.join(axes)})"
            )
        if best_of and best_of.partition("=")[0] == axis:
            raise ConfigError(f"--best-of and --paired-against cannot both choose along {axis!r}")
        index = {(tuple(sorted(r.axes.items())), r.seed): r for r in runs}
        pairs: dict[tuple, list[tuple[bool, list]]] = {}
        for r in runs:
            if r.axes.get(axis) == base:
                continue
            ref = {**r.axes, axis: base}
            if best:  # the reference at its own best choice of the best-of axis
                choice = best.get(_without(tuple(ref.get(a, "-") for a in group_by), bi))
                if choice is None:
                    continue
                ref[group_by[bi]] = choice
            partner = index.get((tuple(sorted(ref.items())), r.seed))
            if partner is None:
                continue
            (da, va), (db, vb) = read(r), read(partner)
            diff = [a - b if a is not None and b is not None else None for a, b in zip(va, vb)]
            pairs.setdefault(group_of(r), []).append((da or db, diff))
        for g, members in pairs.items():
            row = _summarise(dict(zip(group_by, g)), members, metrics, "pairs")
            out.append({**row, "paired_against": paired_against})
    if best_of:

        def kept(r: dict[str, Any]) -> bool:
            g = tuple(r.get(a, "-") for a in group_by)
            return best.get(_without(g, bi)) == g[bi]

        out = [{**r, "best_of": best_of} for r in out if kept(r)]
    return out


def _best_choices(spec: str, group_by: list[str], at: str, group_of, runs) -> tuple[dict[tuple, str], int]:
    """For ``AXIS=min:KEY`` / ``AXIS=max:KEY``: the best choice of AXIS for each group of the other
    axes (ties to the choice first in the runs' order), and AXIS's index in ``group_by``. The choices are
    compared on the mean KEY over the seeds they all ran (a paired comparison: a choice trained on one
    good seed is not preferred over one whose mean takes in a weaker seed too); choices that share no
    seed are compared on their own seeds' means."""
    axis, _, rest = spec.partition("=")
    sense, _, metric = rest.partition(":")
    if sense not in ("min", "max") or not metric:
        raise ConfigError(f"--best-of must be AXIS=min:KEY or AXIS=max:KEY, got {spec!r}")
    if axis not in group_by:
        raise ConfigError(
            f"--best-of {spec}: {axis!r} is not an axis the table groups by ({', '.join(group_by)})"
        )
    key, which = _parse(metric, at)
    i = group_by.index(axis)
    vals: dict[tuple, list[tuple[Any, float]]] = {}  # group -> (seed, KEY) of its runs
    lacking: set[tuple] = set()  # groups with a diverged run or a run without KEY: never chosen
    for r in runs:
        row = _row(r.rows, which)
        v = None if row is None or _diverged(r.rows, row) else _value(row, key)
        g = group_of(r)
        got = vals.setdefault(g, [])
        if v is None:
            lacking.add(g)
        else:
            got.append((r.seed, v))
    candidates: dict[tuple, list[tuple]] = {}  # other axes' choices -> their groups, in the runs' order
    for g in vals:
        if g not in lacking:
            candidates.setdefault(_without(g, i), []).append(g)
    best: dict[tuple, str] = {}
    for other, gs in candidates.items():
        shared = set.intersection(*({s for s, _ in vals[g]} for g in gs))

        def mean(g: tuple) -> float:
            xs = [v for s, v in vals[g] if not shared or s in shared]
            return sum(xs) / len(xs)

        pick, top = gs[0], mean(gs[0])
        for g in gs[1:]:
            m = mean(g)
            if m < top if sense == "min" else m > top:
                pick, top = g, m
        best[other] = pick[i]
    return best, i


def _without(g: tuple[str, ...], i: int) -> tuple[str, ...]:
    """A group's choices without the one of axis ``i``: the group of the other axes."""
    return g[:i] + g[i + 1 :]


def _summarise(group: dict[str, str], members: list[tuple[bool, list]], metrics: list[str], count: str):
    row: dict[str, Any] = {**group, count: len(members), "diverged": sum(d for d, _ in members)}
    for i, m in enumerate(metrics):
        if row["diverged"]:
            row[m] = None
        else:
            row[m] = _stats([v[i] for _, v in members if v[i] is not None])
    return row


def _pct(metric: str) -> bool:
    return "acc" in metric.partition("@")[0]


def _cell(s: dict[str, Any] | None, metric: str, paired: bool) -> str:
    if s is None:
        return "-"
    # a paired difference is shown with its 95% interval (mean ± ci95), a mean with its spread (± std)
    spread = s.get("ci95") if paired else s["std"]
    return textfmt.mean_std(s["mean"], spread, percent=_pct(metric), signed=paired)


def _md(rows: list[dict[str, Any]], group_by: list[str], metrics: list[str], count: str, paired: bool) -> str:
    head = group_by + [count] + [f"{m} (%)" if _pct(m) else m for m in metrics]
    if paired:
        head = group_by + [count] + [f"d {h}" for h in head[len(group_by) + 1 :]]
    body = []
    for r in rows:
        cells = [str(r.get(a, "-")) for a in group_by] + [str(r[count])]
        if r["diverged"]:
            cells += ["diverged"] * len(metrics)
        else:
            cells += [_cell(r[m], m, paired) for m in metrics]
        body.append(cells)
    return textfmt.markdown_table(head, body)


def format_rows(rows: list[dict[str, Any]], group_by: list[str], metrics: list[str], fmt: str) -> str:
    """``md`` (accuracies in percent), ``csv`` or ``json`` (units of metrics.jsonl)."""
    if fmt == "json":
        return json.dumps(rows, indent=1)
    main = [r for r in rows if "paired_against" not in r]
    paired = [r for r in rows if "paired_against" in r]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(group_by + ["seeds", "pairs", "paired_against", "diverged"]
                   + [f"{m} {s}" for m in metrics for s in ("mean", "std", "n", "ci95")])  # fmt: skip
        for r in main + paired:
            cells = [r.get(a, "-") for a in group_by]
            cells += [r.get("seeds", ""), r.get("pairs", ""), r.get("paired_against", ""), r["diverged"]]
            for m in metrics:
                s = r[m] or {}
                cells += [s.get("mean", ""), "" if s.get("std") is None else s["std"], s.get("n", "")]
                cells += ["" if s.get("ci95") is None else s["ci95"]]
            w.writerow(cells)
        return buf.getvalue().rstrip("\n")
    if fmt != "md":
        raise ConfigError(f"--format must be md, csv or json, got {fmt!r}")
    text = _md(main, group_by, metrics, "seeds", False)
    if main and "best_of" in main[0]:
        axis, _, rest = main[0]["best_of"].partition("=")
        sense, _, key = rest.partition(":")
        low = "lowest" if sense == "min" else "highest"
        text = (
            f"The {axis} of each row is the one with the {low} mean {key} over the seeds that all its "
            f"{axis} choices ran (their own seeds where they share none).\n\n" + text
        )
    if paired:
        ref = paired[0]["paired_against"]
        if "best_of" in paired[0]:
            ref += f" at its own best {paired[0]['best_of'].partition('=')[0]}"
        text += (
            f"\n\nPaired by seed, minus {ref} (mean difference ± the half-width of "
            "its 95% Student-t interval over the pairs):\n\n"
        )
        text += _md(paired, group_by, metrics, "pairs", True)
    return text


def cost_line(runs: list[RunRecord]) -> str | None:
    """What the runs cost, from the ``cost`` nclab sweep records in each ``sweep.json``: per device,
    CPU-hours (wall seconds x the CPUs the run held) on a CPU, GPU-hours (wall seconds x the GPUs it
    reserved, a fraction where runs share one, 1 where it reserved none) on a GPU; None when no run
    recorded a cost (records older than the field)."""
    hours: dict[str, float] = {}
    count: dict[str, int] = {}
    missing = 0
    for r in runs:
        c = r.cost or {}
        if not isinstance(c.get("seconds"), int | float):
            missing += 1
            continue
        device = str(c.get("device") or "an unrecorded device")
        held = (float(c.get("gpus") or 0) or 1.0) if _gpu(device) else float(c.get("cpus") or 1)
        hours[device] = hours.get(device, 0.0) + c["seconds"] * held / 3600
        count[device] = count.get(device, 0) + 1
    if not hours:
        return None
    parts = [
        f"{h:.2f} {'GPU' if _gpu(d) else 'CPU'}-hours on {d} ({_runs(count[d])})" for d, h in hours.items()
    ]
    tail = f"; {_runs(missing)} recorded no time" if missing else ""
    return "Measured cost (nclab sweep's records): " + "; ".join(parts) + tail + "."


def _gpu(device: str) -> bool:
    return device.startswith("cuda")


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def write_block(path: str | Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in the Markdown file ``path``
    (replacing what was there; appended at the end when the markers are not there yet)."""
    p = Path(path)
    doc = p.read_text() if p.is_file() else ""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n\n{end}"
    if begin in doc:
        if end not in doc.split(begin, 1)[1]:
            raise NclabError(f"{p}: {begin} has no matching {end}")
        doc = doc.split(begin, 1)[0] + block + doc.split(begin, 1)[1].split(end, 1)[1]
    else:
        doc = doc.rstrip() + ("\n\n" if doc.strip() else "") + block + "\n"
    rundir.write_text_atomic(p, doc)
