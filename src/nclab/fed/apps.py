"""The Flower apps a real deployment publishes: ``nclab.fed.apps:client_app`` and
``nclab.fed.apps:server_app`` (``flwr run`` with the run-config key ``nclab-config`` pointing at the YAML,
see docs/fed.md). They are built by the factories of :mod:`nclab.fed.flower`, which the simulation
(``nclab fed``, :mod:`nclab.fed.runner`) uses too; imports run one way: apps -> runner -> flower.
"""

from __future__ import annotations

from flwr.common import Context
from flwr.server import ServerApp, ServerAppComponents, ServerConfig

from nclab.fed.config import load_fed_config
from nclab.fed.flower import NclabClient, NclabStrategy, make_client_app, weighted_average
from nclab.fed.runner import FedRun
from nclab.rundir import RunDir


def _deployment_server_fn(context: Context):
    cfg = load_fed_config(str(context.run_config["nclab-config"]))
    run_dir = RunDir(cfg.run_dir or "runs/fed")
    run = FedRun(cfg, run_dir.path, resume=run_dir.checkpoint_path.is_file())  # continue what is there
    strategy = NclabStrategy(cfg, run.initial_state(), run.on_round, run.done_rounds)
    return ServerAppComponents(
        strategy=strategy, config=ServerConfig(num_rounds=max(cfg.rounds - run.done_rounds, 0))
    )


#: Apps for a real Flower deployment (``flwr run``); the run config must name ``nclab-config``.
client_app = make_client_app()
server_app = ServerApp(server_fn=_deployment_server_fn)

__all__ = ["NclabClient", "NclabStrategy", "client_app", "server_app", "weighted_average"]
