"""The Ray engine: a local Ray instance gives the same metrics as the local engine, and a Ray cluster
started on 127.0.0.1 by this test (and stopped by it, process by process) runs a two-run sweep."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nclab.cli import main
from nclab.rundir import RunDir
from tests.sweep.test_sweep import RECIPE, _metrics

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def _spec(tmp_path: Path, methods: list[str]) -> Path:
    choices = ", ".join(f"{m}: [{RECIPE.parents[1] / 'methods' / (m + '.yaml')}]" for m in methods)
    p = tmp_path / "spec.yaml"
    p.write_text(
        f"base: [{RECIPE}]\noverrides: [train.epochs=2, train.nc_every=1000]\n"
        f"axes: {{method: {{{choices}}}}}\nseeds: [0]\nresources: {{cpus: 1}}\n"
    )
    return p


def test_ray_local_instance_equals_local_engine(tmp_path):
    spec = _spec(tmp_path, ["la"])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "local")]) == 0
    assert main(["sweep", str(spec), "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    run = Path("method=la") / "seed=0"
    assert _metrics(tmp_path / "ray" / run) == _metrics(tmp_path / "local" / run)


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of the session ``sid``."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return [int(r[0]) for r in rows if len(r) == 3 and int(r[1]) == sid and not r[2].startswith("Z")]


def test_ray_cluster_on_localhost_runs_a_two_run_sweep(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="nclab-ray-", dir="/tmp")  # short (socket paths); /tmp/ray untouched
    head = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],  # fmt: skip
        start_new_session=True,
        stdout=open(tmp_path / "head.log", "w"),
        stderr=subprocess.STDOUT,
    )
    started: set[int] = set()
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        spec = _spec(tmp_path, ["ce", "la"])
        out = tmp_path / "out"
        rc = main(
            ["sweep", str(spec), "--out", str(out), "--engine", "ray", "--address", f"127.0.0.1:{port}"]
        )
        started = set(_session(head.pid))
        assert rc == 0
        assert (
            RunDir(out / "method=ce" / "seed=0").is_complete()
            and RunDir(out / "method=la" / "seed=0").is_complete()
        )
    finally:
        started |= set(_session(head.pid))
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        for pid in set(_session(head.pid)) & started:  # only what this test's head started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 30
        while _session(head.pid) and time.time() < deadline:
            time.sleep(0.5)
        shutil.rmtree(temp, ignore_errors=True)
    assert not _session(head.pid)
