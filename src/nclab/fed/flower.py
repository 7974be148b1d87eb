"""Flower client and strategy factories: a ``ClientApp`` for every client and a ``ServerApp`` with
nclab's strategy (the published deployment apps are in :mod:`nclab.fed.apps`).

The same apps run in Flower's simulation engine (``nclab fed``, through ``run_simulation``) and on a
real deployment (``flwr run`` with ``nclab.fed.apps:client_app`` / ``nclab.fed.apps:server_app`` and
the run-config key ``nclab-config`` pointing at the YAML, see docs/fed.md).

Which virtual client a Flower node plays in a round is sent in the fit config (``partition_id``),
chosen by the server from a generator seeded with (seed, round): the sample of clients, their local
shuffles and therefore the whole run are reproducible, and a resumed run continues exactly. On a real
deployment a node without that key uses its own ``partition-id`` node config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context, FitIns, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg

from nclab.fed.config import FedConfig, gela_options, load_fed_config
from nclab.fed.local import (
    batches,
    load_shared_state,
    local_train,
    missing_class_cosine,
    predict,
    shared_state,
)
from nclab.fed.setup import FedSetup, get_setup
from nclab.heads.gela import gela_scales
from nclab.progress import progress
from nclab.train.device import derive_seed


class NclabClient(NumPyClient):
    """One federated client: local training of the received model on its partition."""

    def __init__(self, setup: FedSetup, node_partition: int | None = None):
        self.setup = setup
        self.node_partition = node_partition

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]):
        s, cfg = self.setup, self.setup.cfg
        pid = int(config.get("partition_id", self.node_partition if self.node_partition is not None else 0))
        rnd = int(config.get("round", 0))
        model = s.build_model()
        load_shared_state(model, [torch.from_numpy(np.asarray(p)) for p in parameters])
        if cfg.method == "fedgela":
            model.head.set_scales(gela_scales(s.client_counts[pid], *gela_options(cfg)))
        x, y = s.client_train(pid)
        mu = cfg.local.prox_mu if cfg.method == "fedprox" else 0.0
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, rnd, pid))
        loss = local_train(model, x, y, cfg.local, generator=gen, prox_mu=mu)
        xt, yt = s.client_test(pid)
        pred = predict(model, xt)[1].argmax(1)
        metrics: dict[str, Any] = {
            "partition_id": pid,
            "train_loss": loss,
            "personal_acc": float((pred == yt).float().mean()) if len(yt) else float("nan"),
            "num_batches": len(
                batches(torch.arange(len(y)), cfg.local)
            ),  # the weight of aggregate_by=batches
        }
        if isinstance(getattr(model.head, "weight", None), torch.nn.Parameter):  # learnable classifier rows
            cos = missing_class_cosine(model.head.weight.detach().cpu(), s.client_counts[pid])
            if cos is not None:
                metrics["missing_class_cos"] = cos
        return [t.numpy() for t in shared_state(model)], len(y), metrics

    def evaluate(self, parameters, config):  # evaluation is centralised on the server
        return 0.0, 0, {}


def client_for(context: Context, cfg: FedConfig | None = None, threads: int | None = None) -> NclabClient:
    """The client a Flower node plays: ``cfg`` (or the YAML named by run-config ``nclab-config``), its
    partition from node-config ``partition-id`` when the server does not name one. ``threads`` sets
    torch's CPU threads in the node's process (the simulation passes the CPUs Ray reserves per client,
    so a parent's ``OMP_NUM_THREADS``, which Ray's workers inherit, cannot oversubscribe the cores)."""
    if threads is not None:
        torch.set_num_threads(threads)
    c = cfg if cfg is not None else load_fed_config(str(context.run_config["nclab-config"]))
    pid = context.node_config.get("partition-id")
    return NclabClient(get_setup(c), None if pid is None else int(pid))


def make_client_app(cfg: FedConfig | None = None, *, threads: int | None = None) -> ClientApp:
    """A ClientApp for ``cfg`` (or, when None, the YAML named by run-config ``nclab-config``); ``threads``
    as in :func:`client_for`."""

    def client_fn(context: Context):
        return client_for(context, cfg, threads).to_client()

    return ClientApp(client_fn=client_fn)


def weighted_average(results: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
    """FedAvg aggregation: sum_k (n_k / sum_j n_j) theta_k, tensor by tensor (McMahan et al. 2017);
    ``n_k`` is a client's sample count, or its number of training batches (FedGELA's code, Fan et al.
    2023)."""
    total = sum(n for _, n in results)
    if total <= 0:
        raise ValueError("the aggregated results have zero total weight (no samples or no batches)")
    out = [np.zeros_like(np.asarray(t, dtype=np.float64)) for t in results[0][0]]
    for tensors, n in results:
        for acc, t in zip(out, tensors):
            acc += (n / total) * np.asarray(t, dtype=np.float64)
    return [o.astype(np.asarray(t).dtype) for o, t in zip(out, results[0][0])]


def client_weight(cfg: FedConfig, num_examples: int, metrics: dict[str, Any]) -> int:
    """A client's weight in the server's mean: its sample count (``aggregate_by: samples``) or its
    training batches per epoch (``batches``, as FedGELA's code weights)."""
    if cfg.aggregate_by == "batches":
        return int(metrics["num_batches"])
    return int(num_examples)


class NclabStrategy(FedAvg):
    """FedAvg with seeded client sampling, sample- (or batch-) weighted aggregation and a per-round
    callback.

    ``on_round(round, aggregated tensors, client metrics)`` evaluates, logs and checkpoints. Progress
    over the rounds goes to stderr: a bar on a terminal, else a line when each round starts.
    """

    def __init__(
        self,
        cfg: FedConfig,
        initial: list[np.ndarray],
        on_round: Callable[[int, list[np.ndarray], list[dict[str, Any]]], None],
        round_offset: int = 0,
    ):
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=1,
            min_evaluate_clients=0,
            min_available_clients=1,
            initial_parameters=ndarrays_to_parameters(initial),
        )
        self.cfg = cfg
        self.on_round = on_round
        self.round_offset = round_offset
        self._bar: Any = None

    def configure_fit(self, server_round, parameters, client_manager):
        rnd = server_round + self.round_offset
        rng = np.random.default_rng(derive_seed(self.cfg.seed, rnd, 7))
        pids = sorted(rng.choice(self.cfg.partition.num_clients, self.cfg.clients_per_round, replace=False))
        # the simulated nodes register asynchronously: wait for all of them before the first round
        if not client_manager.wait_for(self.cfg.clients_per_round, timeout=300):
            raise RuntimeError(f"only {client_manager.num_available()} Flower node(s) connected in 300 s")
        nodes = sorted(client_manager.all().values(), key=lambda c: c.cid)
        if self._bar is None:
            self._bar = progress(
                total=self.cfg.rounds,
                initial=self.round_offset,
                desc="federated rounds",
                unit="round",
                announce=True,
            )
        self._bar.set_postfix_str(f"round {rnd}/{self.cfg.rounds}: {len(pids)} clients training")
        return [
            (nodes[i % len(nodes)], FitIns(parameters, {"partition_id": int(pid), "round": rnd}))
            for i, pid in enumerate(pids)
        ]

    def aggregate_fit(self, server_round, results, failures):
        if failures:
            raise RuntimeError(f"{len(failures)} client(s) failed in round {server_round}: {failures[:1]}")
        pairs = [
            (parameters_to_ndarrays(r.parameters), client_weight(self.cfg, r.num_examples, r.metrics))
            for _, r in results
        ]
        agg = weighted_average(pairs)
        self.on_round(server_round + self.round_offset, agg, [dict(r.metrics) for _, r in results])
        if self._bar is not None:
            self._bar.update(1)
            if server_round + self.round_offset >= self.cfg.rounds:
                self._bar.close()
        return ndarrays_to_parameters(agg), {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []


def make_server_app(
    cfg: FedConfig,
    initial: list[np.ndarray],
    on_round: Callable[[int, list[np.ndarray], list[dict[str, Any]]], None],
    *,
    rounds: int,
    round_offset: int = 0,
) -> ServerApp:
    """A ServerApp running ``rounds`` rounds with :class:`NclabStrategy`."""

    def server_fn(context: Context):
        strategy = NclabStrategy(cfg, initial, on_round, round_offset)
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    return ServerApp(server_fn=server_fn)
