"""Sweep specs: a YAML file that names a grid of runs, expanded to runs with their configs and directories.

A spec (docs/sweep.md)::

    command: train                      # or fed
    base: [../recipes/fmnist_lt.yaml]   # config files, relative to the spec file
    overrides: [train.epochs=5]         # applied to every run
    axes:                               # the grid is the cartesian product of the axes
      imbalance: {"100": [data.imbalance=100], "1000": [data.imbalance=1000]}
      method:
        ce: [../methods/ce.yaml]        # a choice: config files and/or key=value overrides
        crt: {from: {method: ce}, overrides: [stage2.method=crt]}   # stage 2 on the CE run
    seeds: [0, 1, 2]
    resources: {cpus: 1, gpus: 0}       # what each run asks of an engine

Each run lands in ``OUT/<axis>=<choice>/.../seed=<s>``. Its config is the base files, then the choices'
files (in axis order), then the spec's overrides, the choices' overrides and the seed. A choice with
``from`` starts from the finished run that has the named choices instead (the other axes and the seed
the same): its run directory is a copy of that run's, with the choice's overrides applied to the copied
``config.yaml``, resumed.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nclab.compose import is_config_file, is_override
from nclab.errors import ConfigError

__all__ = ["Choice", "Run", "SweepSpec", "expand", "load_spec", "select"]

KEYS = {"command", "base", "overrides", "axes", "seeds", "resources"}
NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass(frozen=True)
class Choice:
    """One value of an axis: config files and overrides, or a stage on another run (``after``)."""

    name: str
    files: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    after: tuple[tuple[str, str], ...] = ()  # (axis, choice) pairs naming the source run


@dataclass
class SweepSpec:
    path: Path
    command: str
    base: list[str]
    overrides: list[str]
    axes: dict[str, dict[str, Choice]]
    seeds: list[int]
    resources: dict[str, float] = field(default_factory=lambda: {"cpus": 1.0, "gpus": 0.0})


@dataclass
class Run:
    """One run of a sweep: where it lives, how its config is composed, what it starts from."""

    axes: dict[str, str]
    seed: int
    dir: Path
    files: list[str]
    overrides: list[str]
    order: tuple[int, ...]  # choice indices, axis by axis (the spec's order, for tables)
    source: Run | None = None  # the run an `after` choice starts from

    @property
    def key(self) -> tuple:
        return (*self.axes.items(), ("seed", self.seed))

    @property
    def label(self) -> str:
        return "/".join([f"{a}={c}" for a, c in self.axes.items()] + [f"seed={self.seed}"])

    @property
    def log(self) -> Path:
        return self.dir.with_name(self.dir.name + ".log")


def _err(path: Path, msg: str) -> ConfigError:
    return ConfigError(f"sweep spec {path}: {msg}")


def _str_list(path: Path, where: str, x: Any) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        x = [x]
    if not isinstance(x, list) or not all(isinstance(v, (str, int, float)) for v in x):
        raise _err(path, f"{where} must be a list of config files or key=value overrides, got {x!r}")
    return [str(v) for v in x]


def _split(path: Path, where: str, items: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    files, overrides = [], []
    for it in items:
        if is_override(it, path.parent):
            overrides.append(it)
        elif is_config_file(it, path.parent):
            f = (path.parent / it).resolve()
            if not f.is_file():
                raise _err(path, f"{where}: config file {it!r} does not exist (looked for {f})")
            files.append(str(f))
        else:
            raise _err(path, f"{where}: {it!r} is neither a config file (*.yaml) nor a key=value override")
    return tuple(files), tuple(overrides)


def _choice(path: Path, axis: str, name: str, value: Any) -> Choice:
    where = f"axes.{axis}.{name}"
    if isinstance(value, dict):
        unknown = set(value) - {"from", "overrides", "files"}
        if unknown:
            raise _err(path, f"{where} has unknown keys {sorted(unknown)} (valid: from, files, overrides)")
        items = _str_list(path, where, value.get("files")) + _str_list(path, where, value.get("overrides"))
        after = value.get("from")
        if after is not None and (not isinstance(after, dict) or not after):
            raise _err(path, f"{where}.from must map axis names to choices, e.g. {{method: ce}}")
        pairs = tuple((str(a), str(c)) for a, c in (after or {}).items())
    else:
        items, pairs = _str_list(path, where, value), ()
    files, overrides = _split(path, where, items)
    return Choice(str(name), files, overrides, pairs)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec; every problem is a one-line :class:`~nclab.errors.ConfigError`."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"sweep spec {p} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot read sweep spec {p}: {first}") from None
    if not isinstance(raw, dict):
        raise _err(p, f"must be a YAML mapping with keys {', '.join(sorted(KEYS))}")
    unknown = set(raw) - KEYS
    if unknown:
        raise _err(p, f"unknown keys {sorted(unknown)} (valid: {', '.join(sorted(KEYS))})")
    command = str(raw.get("command", "train"))
    if command not in ("train", "fed"):
        raise _err(p, f"command must be train or fed, got {command!r}")
    base_files, base_over = _split(p, "base", _str_list(p, "base", raw.get("base")))
    if base_over:
        raise _err(p, f"base holds config files only; put {list(base_over)} under overrides")
    _, overrides = _split(p, "overrides", _str_list(p, "overrides", raw.get("overrides")))
    axes_raw = raw.get("axes")
    if not isinstance(axes_raw, dict) or not axes_raw:
        raise _err(p, "axes must be a non-empty mapping from axis name to {choice: [files or overrides]}")
    axes: dict[str, dict[str, Choice]] = {}
    for axis, choices in axes_raw.items():
        axis = str(axis)
        if not NAME.match(axis) or axis == "seed":
            raise _err(p, f"axis name {axis!r} must be letters, digits, _ . + - (and not 'seed')")
        if not isinstance(choices, dict) or not choices:
            raise _err(p, f"axis {axis!r} is empty: give it at least one choice")
        axes[axis] = {}
        for name, value in choices.items():
            if not NAME.match(str(name)):
                raise _err(p, f"choice name {axis}={name!r} must be letters, digits, _ . + -")
            axes[axis][str(name)] = _choice(p, axis, str(name), value)
    for axis, choices in axes.items():
        for c in choices.values():
            for a, name in c.after:
                if a not in axes:
                    raise _err(p, f"{axis}={c.name} starts from unknown axis {a!r} (axes: {', '.join(axes)})")
                if name not in axes[a]:
                    raise _err(
                        p,
                        f"{axis}={c.name} starts from {a}={name}, which matches no run "
                        f"({a} has {', '.join(axes[a])})",
                    )
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise _err(p, f"seeds must be a non-empty list of integers, got {seeds!r}")
    res = raw.get("resources") or {}
    if not isinstance(res, dict) or set(res) - {"cpus", "gpus"}:
        raise _err(p, f"resources must be a mapping with cpus and/or gpus, got {res!r}")
    try:
        resources = {"cpus": float(res.get("cpus", 1)), "gpus": float(res.get("gpus", 0))}
    except (TypeError, ValueError):
        raise _err(p, f"resources.cpus and resources.gpus must be numbers, got {res!r}") from None
    if resources["cpus"] <= 0 or resources["gpus"] < 0:
        raise _err(p, "resources.cpus must be > 0 and resources.gpus >= 0")
    return SweepSpec(p, command, list(base_files), list(overrides), axes, list(seeds), resources)


def expand(spec: SweepSpec, out: str | Path) -> list[Run]:
    """The runs of ``spec`` under ``out``, sources before the runs that start from them.

    Raises:
        ConfigError: an ``after`` chain that loops or whose source run is itself missing.
    """
    out = Path(out)
    names = list(spec.axes)
    seed_key = "train.seed" if spec.command == "train" else "seed"
    runs: dict[tuple, Run] = {}
    for seed in spec.seeds:
        for combo in itertools.product(*[list(spec.axes[a].items()) for a in names]):
            axes = {a: name for a, (name, _) in zip(names, combo)}
            choices = [c for _, c in combo]
            order = tuple(list(spec.axes[a]).index(name) for a, (name, _) in zip(names, combo))
            d = out.joinpath(*[f"{a}={c}" for a, c in axes.items()], f"seed={seed}")
            files = list(spec.base) + [f for c in choices for f in c.files]
            overrides = list(spec.overrides) + [o for c in choices for o in c.overrides]
            if any(c.after for c in choices):  # the source's resolved config + the after choices' own
                files = [f for c in choices if c.after for f in c.files]
                overrides = [o for c in choices if c.after for o in c.overrides]
            else:
                overrides.append(f"{seed_key}={seed}")
            r = Run(axes, seed, d, files, overrides, order)
            runs[r.key] = r
    for r in runs.values():
        after = [pair for a in names for pair in spec.axes[a][r.axes[a]].after]
        if after:
            src_axes = dict(r.axes)
            src_axes.update(dict(after))
            r.source = runs.get((*src_axes.items(), ("seed", r.seed)))
    ordered: list[Run] = []
    state: dict[tuple, int] = {}

    def visit(r: Run) -> None:
        if state.get(r.key) == 2:
            return
        if state.get(r.key) == 1:
            raise _err(spec.path, f"the after chain of {r.label} loops back to itself")
        state[r.key] = 1
        if r.source is not None:
            visit(r.source)
        state[r.key] = 2
        ordered.append(r)

    for r in runs.values():
        visit(r)
    return ordered


def select(spec: SweepSpec, runs: list[Run], only: list[str]) -> list[Run]:
    """The runs matching every ``AXIS=CHOICE`` (or ``seed=N``) of ``only``; several values of one key
    match any of them. The sources of the runs kept are kept too (an ``after`` run needs its source), in
    ``runs`` order.

    Example: ``only = ["method=fedgela", "method=fedavg", "seed=2"]`` keeps seed 2 of both methods.

    Raises:
        ConfigError: a term without ``=``, an axis or choice the spec does not have, a seed it does not run.
    """
    want: dict[str, set[str]] = {}
    for term in only:
        key, eq, value = term.partition("=")
        if not eq or not key or not value:
            raise _err(spec.path, f"--only takes AXIS=CHOICE or seed=N, got {term!r}")
        if key == "seed":
            if not value.lstrip("-").isdigit() or int(value) not in spec.seeds:
                raise _err(spec.path, f"--only {term}: the spec's seeds are {spec.seeds}")
        elif key not in spec.axes:
            raise _err(spec.path, f"--only {term}: no axis {key!r} (axes: {', '.join(spec.axes)})")
        elif value not in spec.axes[key]:
            raise _err(spec.path, f"--only {term}: axis {key} has no choice {value!r} "
                       f"(choices: {', '.join(spec.axes[key])})")  # fmt: skip
        want.setdefault(key, set()).add(value)

    def matches(r: Run) -> bool:
        return all((str(r.seed) if k == "seed" else r.axes[k]) in v for k, v in want.items())

    keep: set[tuple] = set()
    for r in runs:
        if matches(r):
            while r is not None and r.key not in keep:
                keep.add(r.key)
                r = r.source
    return [r for r in runs if r.key in keep]
