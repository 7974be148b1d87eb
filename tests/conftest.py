"""Shared fixtures: deterministic torch settings and a helper that runs the CLI in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# the same examples on every run: CI must not turn red on a draw a previous run never saw
# (HYPOTHESIS_PROFILE=explore draws fresh examples when hunting for bugs locally)
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# One intra-op thread: the suite's tensors are tiny, and on a loaded 2-core machine torch's thread pool
# turned a 4 x 4 matmul into 18 ms (the SELI reproduction: 250 s with the default pool, 17 s with one
# thread). Subprocesses get OMP_NUM_THREADS=1 from cli_env(). NCLAB_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("NCLAB_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (a gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(fn, *args, nprocs: int = 2, timeout: float = 300) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` forked processes and wait for all of them.

    Forked, not spawned: a spawned child imports torch, nclab and the test module again (~40 s of a
    loaded 2-core machine for a test that computes for milliseconds); a fork starts with them loaded.
    The test process uses one intra-op thread (above), so no OpenMP pool is forked. A child that
    fails raises here (torch.multiprocessing's ProcessRaisedException); one that hangs is killed at
    ``timeout``.
    """
    import torch.multiprocessing as mp

    ctx = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="fork")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{nprocs} ranks still running after {timeout:.0f} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()


def cli_env() -> dict[str, str]:
    """Environment for a subprocess that imports nclab from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300):
    """Run ``python -m nclab ARGS`` and return the CompletedProcess (text mode)."""
    return subprocess.run(
        [sys.executable, "-m", "nclab", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
