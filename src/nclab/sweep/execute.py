"""One run of a sweep, from a plain dict (what an engine ships to a worker: a thread, or a Ray task).

:func:`execute` decides from the run directory alone what is left to do, and does it through the CLI
(``python -m nclab train|fed ...`` in a child process, its output in ``<run dir>.log``):

- complete (:meth:`nclab.rundir.RunDir.is_complete`: the last metrics row reaches the run's own budget): skipped,
  its files untouched;
- a checkpoint and a config: ``--resume`` (exact, docs/train.md);
- a run that starts from another (``after``): the source's directory copied, the choice's files and
  overrides merged onto the copied ``config.yaml`` (validated by the schema), then ``--resume``;
- anything else: the directory (if any) is cleared and the run starts from its composed config.

The child gets ``OMP_NUM_THREADS`` = the run's CPUs, so a run computes the same numbers whichever engine
starts it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nclab.rundir import RunDir, with_meta, write_text_atomic

__all__ = ["RECORD", "command_line", "execute", "plan", "stop_children"]

RECORD = "sweep.json"  # the run's axis choices and seed
_LIVE: set[subprocess.Popen] = set()  # the runs' child processes still running, for stop_children
_LIVE_LOCK = threading.Lock()


def stop_children(grace: float = 60.0) -> None:
    """Stop the runs this process is running: SIGTERM to each child, SIGKILL after ``grace`` seconds.

    A stopped run keeps its last checkpoint, so the same sweep command resumes it. Each child's
    :func:`execute` then returns as for a failed run (its sitting's wall time recorded)."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.time() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def plan(p: dict[str, Any]) -> str:
    """What :func:`execute` would do with the run now: skip, resume, after SOURCE, or start."""
    run = RunDir(p["dir"])
    if run.is_complete():
        return "complete"
    if p.get("source"):
        return f"after {p['source']}"
    if run.checkpoint_path.is_file() and run.config_path.is_file():
        return "resume"
    return "start"


def command_line(p: dict[str, Any], action: str) -> list[str]:
    base = [sys.executable, "-m", "nclab", p["command"]]
    if action in ("resume",) or action.startswith("after"):
        return base + ["--resume", p["dir"]]
    return base + [*p["files"], *p["overrides"], "--run-dir", p["dir"]]


def _rewrite_config(p: dict[str, Any]) -> None:
    """The copied source config, then the choice's files and overrides, written back with its meta."""
    from omegaconf import OmegaConf

    run = RunDir(p["dir"])
    raw = run.config()  # a clear error for a missing or corrupt config.yaml
    files = [run.config_path, *p["files"]]  # composing drops the copied config's meta block
    if p["command"] == "train":
        from nclab.train.config import load_config, to_yaml

        meta = {**(OmegaConf.to_container(raw.meta) if "meta" in raw else {}), "after": p["source"]}
        text = with_meta(to_yaml(load_config(files, p["overrides"])), meta)  # now naming the source
    else:
        from nclab.fed.config import load_fed_config

        text = OmegaConf.to_yaml(OmegaConf.structured(load_fed_config(files, p["overrides"])))
    run.write_config(text)


def _portable(path: str | None, cwd: str | None) -> str | None:
    """``path`` relative to the sweep's working directory when it lies inside it (a record committed to a
    repository then names the spec as every clone has it), else as given."""
    if path is None or cwd is None:
        return path
    try:
        return str(Path(path).relative_to(Path(cwd).resolve()))
    except ValueError:
        return path


def _record(p: dict[str, Any], cost: dict[str, Any] | None = None) -> None:
    d = Path(p["dir"])
    d.mkdir(parents=True, exist_ok=True)
    cwd = p.get("cwd")
    rec = {"axes": p["axes"], "seed": p["seed"], "order": p["order"],
           "spec": _portable(p["spec"], cwd), "after": _portable(p["source"], cwd)}  # fmt: skip
    if cost:
        rec["cost"] = cost
    write_text_atomic(d / RECORD, json.dumps(rec, indent=1) + "\n")


def _prior_cost(d: Path) -> dict[str, Any] | None:
    """The ``cost`` a run's record already holds (from earlier sittings of a resumed run), if any."""
    try:
        cost = json.loads((d / RECORD).read_text()).get("cost")
    except (OSError, ValueError, AttributeError):
        return None
    return cost if isinstance(cost, dict) and isinstance(cost.get("seconds"), int | float) else None


def _cost(p: dict[str, Any], prior: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    """What the run cost: wall seconds of its child processes over every sitting, the CPUs and GPUs it
    held (the spec's resources) and the device its config's ``meta`` names (``cpu``, ``cuda (NAME)``)."""
    try:
        device = RunDir(p["dir"]).config().meta.get("device")
    except Exception:  # noqa: BLE001 - a run whose config cannot be read still has a wall time
        device = None
    return {
        "seconds": round(seconds + (prior or {}).get("seconds", 0.0), 1),
        "cpus": p.get("cpus", 1),
        "gpus": p.get("gpus", 0),
        "device": str(device) if device is not None else None,
    }


def execute(p: dict[str, Any]) -> dict[str, Any]:
    """Bring the run described by ``p`` to completion; never raises for a failing run.

    Returns:
        ``{"label", "status": "skipped"|"ok"|"failed", "rc", "log", "seconds", "reason"}``.
    """
    t0 = time.time()
    d, log = Path(p["dir"]), Path(p["log"])
    out = {"label": p["label"], "dir": str(d), "log": str(log), "rc": 0, "reason": ""}
    action = plan(p)
    if action == "complete":
        return {**out, "status": "skipped", "seconds": 0.0}
    prior = _prior_cost(d) if action == "resume" else None
    try:
        if p.get("source"):
            src = Path(p["source"])
            if not RunDir(src).is_complete():
                return {**out, "status": "failed", "rc": None, "seconds": 0.0,
                        "reason": f"its source run {src} is not complete"}  # fmt: skip
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(src, d, ignore=shutil.ignore_patterns(".lock", ".*.tmp-*", RECORD))
            _rewrite_config(p)
        elif action == "start" and d.exists():
            shutil.rmtree(d)  # a start that died before its first checkpoint: begin again
        _record(p, prior)
    except Exception as err:  # noqa: BLE001 - reported as this run's failure, the sweep goes on
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"nclab sweep: cannot prepare {d}: {type(err).__name__}: {err}\n")
        return {**out, "status": "failed", "rc": None, "seconds": time.time() - t0, "reason": str(err)}
    threads = str(max(1, int(p.get("cpus", 1))))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TQDM_DISABLE": "1"}
    cmd = command_line(p, action)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a" if action == "resume" else "w") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        t_run = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=p.get("cwd"))
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            rc = proc.wait()
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    if RunDir(d).config_path.is_file():  # the sitting's wall time, kept for a resume to add to
        _record(p, _cost(p, prior, time.time() - t_run))
    ok = rc == 0 and RunDir(d).is_complete()
    reason = (
        "" if ok else (f"exit code {rc}" if rc else "it exited 0 but its metrics do not reach its budget")
    )
    return {
        **out,
        "status": "ok" if ok else "failed",
        "rc": rc,
        "seconds": time.time() - t0,
        "reason": reason,
    }
