"""A local Ray instance must not outlive the ``nclab`` process that started it (its driver): ``nclab
fed``'s Flower simulation, ``nclab sweep --engine ray`` without ``--address``.

Ray ties its GCS and raylet to the driver, but when the driver is killed with SIGKILL its dashboard and
runtime-env agents stay alive (Ray 2.x; they also overwrite their command line and environment, so they
cannot be recognised afterwards), and so do the processes Ray's workers started (a sweep's runs). So a
small watchdog process (``python -m nclab.raywatch``, in its own session) runs beside the driver:

- every half second it records the driver's descendants (PID and start time) in ``<dir>/.simulation.pids``;
- it holds the read end of a pipe from the driver. When the pipe closes without the word ``done`` (the
  driver died or failed), it kills the recorded processes still alive (same PID *and* start time, so a
  reused PID is never hit) and their children;
- on the next start in the same directory (a run directory, under the run lock, so no live driver owns
  them) the processes recorded in ``.simulation.pids`` are killed too, in case the watchdog died as well.

Linux only (it reads ``/proc``); elsewhere this is a no-op, and ``ray stop`` cleans up after a kill.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

PIDS = ".simulation.pids"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent PID, start time in clock ticks) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[19])


def _table() -> dict[int, tuple[int, int]]:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None:
                out[int(d.name)] = st
    return out


def descendants(root: int, known: dict[int, int] | None = None) -> dict[int, int]:
    """``{pid: start time}`` of the live descendants of ``root`` and of the ``known`` processes."""
    table = _table()
    known = {p: t for p, t in (known or {}).items() if table.get(p, (0, -1))[1] == t}
    parents = {root, *known}
    out = dict(known)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, start) in table.items():
            if ppid in parents and pid not in out and pid != os.getpid():
                out[pid] = start
                parents.add(pid)
                changed = True
    return out


def kill_recorded(procs: dict[int, int], rounds: int = 3) -> list[int]:
    """SIGKILL the processes of ``{pid: start time}`` that are still the same processes, and their
    children; returns the PIDs killed."""
    killed: list[int] = []
    for _ in range(rounds):  # a dying raylet may still start a worker: look again
        alive = descendants(-1, procs)
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        procs = alive
        time.sleep(0.2)
    return killed


def clean_leftovers(run_dir: str | Path) -> list[int]:
    """Kill the processes recorded in ``<run_dir>/.simulation.pids`` by a driver that died with its
    watchdog; call with the run lock held. Returns the PIDs killed."""
    path = Path(run_dir) / PIDS
    if not path.is_file() or not Path("/proc").is_dir():
        return []
    try:
        procs = {int(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):
        procs = {}
    killed = kill_recorded(procs)
    path.unlink(missing_ok=True)
    return killed


class Reaper:
    """Context manager around a local Ray instance: its processes are killed if the driver dies or fails.

    ``run_dir`` holds the record of the processes: a run directory whose lock the caller holds, or a
    directory of the caller's own. Leaving the block normally tells the watchdog to exit without
    killing anything (Ray is shut down by its user); leaving it with an exception, or the driver's
    death, makes the watchdog kill the processes started inside the block.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Reaper:
        clean_leftovers(self.dir)
        if Path("/proc").is_dir():
            before = ",".join(map(str, descendants(os.getpid())))  # not the simulation's: never killed
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "nclab.raywatch", str(os.getpid()), str(self.dir / PIDS), before],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,  # not killed with the driver's process group or by its Ctrl-C
            )
            assert self._proc.stdout is not None
            self._proc.stdout.readline()  # "ready": the simulation starts only once it is watched
            self._proc.stdout.close()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            _shutdown_ray()
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            if exc_type is None:
                self._proc.stdin.write(b"done")
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def _shutdown_ray() -> None:
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 - best effort on the way out of a failure
        pass


def _watch(driver: int, pids_file: Path, before: set[int]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    known: dict[int, int] = {}
    print("ready", flush=True)
    sys.stdout.close()
    data = b""
    while True:
        ready, _, _ = select.select([stdin], [], [], 0.5)
        if ready:
            chunk = os.read(stdin.fileno(), 64)
            if not chunk:
                break  # EOF: the driver closed the pipe or died
            data += chunk
            continue
        now = {p: t for p, t in descendants(driver, known).items() if p not in before}
        if now != known:
            known = now
            tmp = pids_file.with_name(f".{pids_file.name}.tmp-{os.getpid()}")
            try:
                tmp.write_text(json.dumps(known))
                os.replace(tmp, pids_file)
            except OSError:  # the run directory went away: keep watching
                pass
    if not data.startswith(b"done"):
        kill_recorded({p: t for p, t in descendants(driver, known).items() if p not in before})
    pids_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), Path(sys.argv[2]), {int(p) for p in sys.argv[3].split(",") if p}))
