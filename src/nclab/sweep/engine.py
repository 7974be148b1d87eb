"""Engines that run a sweep's runs: ``local`` (a pool of ``--jobs`` child processes on this machine) or
``ray`` (one Ray task per run on an existing cluster, or on a local Ray instance).

Both hand :func:`nclab.sweep.execute.execute` the same plain dict, which runs the same command line with
the same thread count, so a run's metrics do not depend on the engine. A run that starts from another
(``after``) is submitted once its source has finished; if the source failed, so does it. One failing run
never stops the others; :func:`run_sweep` returns every run's result.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from nclab.errors import NclabError
from nclab.sweep.execute import execute, stop_children
from nclab.sweep.spec import Run, SweepSpec

__all__ = ["payload", "run_sweep", "summary"]


def payload(run: Run, spec: SweepSpec) -> dict[str, Any]:
    """The plain, picklable description of ``run`` that a worker executes."""
    return {
        "label": run.label,
        "command": spec.command,
        "dir": str(run.dir.resolve()),
        "log": str(run.log.resolve()),
        "files": list(run.files),
        "overrides": list(run.overrides),
        "source": str(run.source.dir.resolve()) if run.source is not None else None,
        "axes": dict(run.axes),
        "seed": run.seed,
        "order": list(run.order),
        "spec": str(spec.path.resolve()),
        "cpus": spec.resources["cpus"],
        "gpus": spec.resources["gpus"],
        "cwd": os.getcwd(),
    }


class _Local:
    def __init__(self, jobs: int):
        self.pool = cf.ThreadPoolExecutor(max_workers=jobs)
        self.capacity = jobs

    def submit(self, p: dict[str, Any]) -> Any:
        return self.pool.submit(execute, p)

    def wait(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return [(h, h.result()) for h in done]

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class _Ray:
    def __init__(self, address: str | None, resources: dict[str, float], jobs: int | None):
        from nclab.extras import require

        self.ray = ray = require("ray", what="--engine ray")  # "--engine ray needs Ray: pip install ..."
        self.watch = None
        if address is None:  # an instance of our own: it and the runs its workers start die with us
            import tempfile

            from nclab.raywatch import Reaper

            self.watch = Reaper(tempfile.mkdtemp(prefix="nclab-sweep-ray-")).__enter__()
        # "local": a new instance for this sweep, never a cluster a stale /tmp/ray address file names
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        kwargs["address"] = address or "local"
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            self._unwatch(failed=True)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise NclabError(
                f"cannot connect to the Ray cluster at {address or '(local)'}: {first}"
            ) from None
        self.task = ray.remote(execute).options(
            num_cpus=resources["cpus"], num_gpus=resources["gpus"], max_retries=0
        )
        self.capacity = jobs or 1_000_000

    def submit(self, p: dict[str, Any]) -> Any:
        return self.task.remote(p)

    def wait(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        done, _ = self.ray.wait(handles, num_returns=1)
        out = []
        for h in done:
            try:
                out.append((h, self.ray.get(h)))
            except Exception as err:  # noqa: BLE001 - a lost worker is this run's failure
                out.append((h, {"status": "failed", "reason": f"Ray task failed: {err}".splitlines()[0]}))
        return out

    def close(self) -> None:
        self.ray.shutdown()
        self._unwatch()

    def _unwatch(self, failed: bool = False) -> None:
        """Stop the watchdog (:mod:`nclab.raywatch`); ``failed``: it kills what the instance started."""
        if self.watch is not None:
            import shutil

            self.watch.__exit__(RuntimeError if failed else None, None, None)
            shutil.rmtree(self.watch.dir, ignore_errors=True)
            self.watch = None


class _Progress:
    """A bar over runs (done / failed / running, ETA) on a terminal; a log line per finished run otherwise."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.done = self.failed = self.running = 0
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", dynamic_ncols=True, file=sys.stderr)

    def update(self, res: dict[str, Any] | None = None, running: int = 0) -> None:
        self.running = running
        if res is not None:
            if res["status"] == "failed":
                self.failed += 1
            else:
                self.done += 1
            line = f"{res['status']:7s} {res['label']}"
            if res.get("seconds"):
                line += f" ({res['seconds']:.0f} s)"
            if res["status"] == "failed":
                line += f": {res.get('reason', '')}; log: {res.get('log', '-')}"
            if self.bar is not None:
                if res["status"] == "failed":
                    self.bar.write(line, file=sys.stderr)
                self.bar.update(1)
            else:
                print(line, flush=True)
        if self.bar is not None:
            self.bar.set_postfix(done=self.done, failed=self.failed, running=self.running)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stop_on_sigterm() -> Any:
    """While a sweep runs in the main thread, SIGTERM (``kill PID``) stops it as Ctrl-C does: its local
    runs are stopped rather than left training. Returns the handler to restore (None: not installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def run_sweep(
    runs: list[Run],
    spec: SweepSpec,
    *,
    engine: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    progress: bool | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run (or skip, or resume) every run; sources before the runs that start from them.

    Args:
        runs: from :func:`nclab.sweep.spec.expand` (sources first).
        spec: the spec they came from (command, resources).
        engine: ``local`` or ``ray``.
        jobs: runs at a time (local: default 1; ray: default as many as the cluster fits).
        address: the Ray cluster (``ray``), e.g. ``127.0.0.1:6379``; None starts a local instance.
        progress: force the progress bar on or off (default: on when stderr is a terminal).

    Returns:
        One result per run (:func:`nclab.sweep.execute.execute`), in ``runs`` order.
    """
    if engine == "local":
        backend: Any = _Local(max(1, jobs or 1))
    elif engine == "ray":
        backend = _Ray(address, spec.resources, jobs)
    else:
        raise NclabError(f"--engine must be local or ray, got {engine!r}")
    results: dict[tuple, dict[str, Any]] = {}
    pending = list(runs)
    running: dict[Any, Run] = {}
    bar = _Progress(len(runs), progress)
    old_term = _stop_on_sigterm()
    try:
        while pending or running:
            for r in list(pending):
                if len(running) >= backend.capacity:
                    break
                if r.source is not None:
                    src = results.get(r.source.key)
                    if src is None:
                        continue
                    if src["status"] in ("failed", "diverged"):
                        pending.remove(r)
                        res = {"label": r.label, "dir": str(r.dir), "log": src.get("log"), "rc": None,
                               "status": "failed", "seconds": 0.0,
                               "reason": f"its source {r.source.label} {src['status']}"}  # fmt: skip
                        results[r.key] = res
                        bar.update(res, len(running))
                        continue
                pending.remove(r)
                running[backend.submit(payload(r, spec))] = r
            bar.update(None, len(running))
            if not running:
                break
            for h, res in backend.wait(list(running)):
                r = running.pop(h)
                res = {"label": r.label, "dir": str(r.dir), "log": str(r.log), **res}
                results[r.key] = res
                bar.update(res, len(running))
                if on_result is not None:
                    on_result(res)
    except BaseException:  # Ctrl-C, SIGTERM: the local runs stop too (each resumes on the next sweep)
        if engine == "local":
            stop_children()
        raise
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        bar.close()
        backend.close()
    return [results[r.key] for r in runs if r.key in results]


def summary(results: list[dict[str, Any]]) -> str:
    """``N runs: a trained, b already complete, c diverged, d failed`` and the failed runs' logs."""
    n = {s: sum(r["status"] == s for r in results) for s in ("ok", "skipped", "diverged", "failed")}
    lines = [
        f"{len(results)} runs: {n['ok']} trained, {n['skipped']} already complete, {n['diverged']} diverged, "
        f"{n['failed']} failed"
    ]
    lines += [f"  failed {r['label']}: {r.get('reason', '')}; log: {r.get('log')}" for r in results
              if r["status"] == "failed"]  # fmt: skip
    return "\n".join(lines)
