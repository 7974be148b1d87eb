"""Flower simulation end to end (needs the `fed` extra: flwr[simulation])."""

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from nclab.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "recipes" / "fed_synthetic.yaml"


@pytest.fixture(autouse=True)
def _workers_import_nclab(monkeypatch):
    # Flower's simulation workers are separate processes: they must find this checkout's nclab.
    src = str(ROOT / "src")
    monkeypatch.setenv("PYTHONPATH", src + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _rows(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("wall_time")
    return rows


def test_two_round_simulation_writes_run_dir(tmp_path):
    run_dir = tmp_path / "gela"
    assert main(["fed", str(SMOKE), "--run-dir", str(run_dir)]) == 0
    rows = _rows(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert 0.0 <= rows[-1]["acc/all"] <= 1.0 and rows[-1]["fed/personal_acc"] is not None
    assert "nc/nc1" in rows[-1]
    clients = json.loads((run_dir / "clients.json").read_text())["clients"]
    assert len(clients) == 2 and all(sum(c["class_counts"]) == c["num_samples"] for c in clients)
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir / "geometry" / "2.npz").is_file()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["fed", str(SMOKE), "method=fedavg", "--run-dir", str(full)]) == 0
    assert main(["fed", str(SMOKE), "method=fedavg", "rounds=1", "--run-dir", str(part)]) == 0
    assert main(["fed", "--resume", str(part), "rounds=2"]) == 0
    assert _rows(full) == _rows(part)
