"""The published deployment apps (fed/apps.py): the server starts a run, or continues the one in its
run directory."""

from pathlib import Path

import pytest

pytest.importorskip("flwr")

from flwr.client import ClientApp  # noqa: E402
from flwr.server import ServerApp  # noqa: E402

from nclab.fed import apps  # noqa: E402
from nclab.fed.flower import NclabStrategy  # noqa: E402

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "recipes" / "fed_synthetic.yaml"


def test_the_server_starts_a_run_then_continues_it(tmp_path):
    cfg = tmp_path / "fed.yaml"
    cfg.write_text(f"defaults: [{SMOKE}]\nrun_dir: {tmp_path / 'run'}\nrounds: 3\n")
    context = type("Context", (), {"run_config": {"nclab-config": str(cfg)}})()
    first = apps._deployment_server_fn(context)
    assert isinstance(first.strategy, NclabStrategy) and first.config.num_rounds == 3
    run = first.strategy.on_round.__self__  # the FedRun of the server process
    run.on_round(1, run.initial_state(), [])
    run.close()  # the server process ends after round 1
    second = apps._deployment_server_fn(context)
    assert second.config.num_rounds == 2 and second.strategy.round_offset == 1
    second.strategy.on_round.__self__.close()
    assert isinstance(apps.client_app, ClientApp) and isinstance(apps.server_app, ServerApp)
