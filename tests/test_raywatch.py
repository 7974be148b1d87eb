"""The watchdog of a local Ray instance (raywatch.py): what a killed driver started dies with it, a
normal exit kills nothing, and a record left by a dead driver and its dead watchdog is cleaned."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nclab.raywatch import PIDS, Reaper, clean_leftovers
from tests.conftest import cli_env

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="the watchdog reads /proc (Linux)")

DRIVER = """
import subprocess, sys, time
from nclab.raywatch import Reaper
with Reaper(sys.argv[1]):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print(child.pid, flush=True)
    time.sleep(300)
"""


def alive(pid):
    """Whether ``pid`` is a live process (not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait(cond, what, timeout=30):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_the_watchdog_kills_what_a_killed_driver_started(tmp_path):
    """What Ray's agents do after kill -9 of the driver, in miniature: a child outlives its parent."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=cli_env()
    )
    child = int(proc.stdout.readline())
    proc.stdout.close()
    pids = tmp_path / PIDS
    _wait(lambda: pids.is_file() and str(child) in pids.read_text(), "the watchdog never recorded the child")
    proc.kill()
    proc.wait()
    _wait(lambda: not alive(child), "the driver's child outlived it", 15)
    _wait(lambda: not pids.exists(), "the watchdog left its record behind", 15)  # it tidies up


def test_a_normal_exit_kills_nothing_and_a_dead_drivers_record_is_cleaned(tmp_path):
    with Reaper(tmp_path):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        _wait(
            lambda: (tmp_path / PIDS).is_file() and str(child.pid) in (tmp_path / PIDS).read_text(),
            "unrecorded",
        )
    try:
        assert alive(child.pid) and not (tmp_path / PIDS).exists()
        start = int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        (tmp_path / PIDS).write_text(json.dumps({child.pid: start}))  # as a driver killed with its watchdog
        assert set(clean_leftovers(tmp_path)) == {child.pid}
        child.wait(timeout=15)
        assert not (tmp_path / PIDS).exists()
    finally:
        child.kill()
        child.wait()
