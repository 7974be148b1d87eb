"""Shared fixtures: deterministic torch settings and a helper that runs the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


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
