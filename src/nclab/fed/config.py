"""Typed configuration of a federated run (OmegaConf structured config, YAML fragments composed left to
right, see :mod:`nclab.compose`, then dotted overrides)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nclab.compose import compose
from nclab.errors import ConfigError

METHODS = ("fedavg", "fedavg_etf", "fedprox", "fedgela")


@dataclass
class FedDataConfig:
    name: str = "fmnist"  # fmnist | cifar10 | cifar100 | synthetic
    root: str | None = None
    imbalance: float = 1.0  # global long-tailed profile (1 = balanced)
    profile: str = "exp"
    # synthetic only
    num_classes: int = 10
    samples_per_class: int = 200
    test_per_class: int = 50
    dim: int = 32


@dataclass
class PartitionConfig:
    kind: str = "pcdd"  # pcdd | dirichlet
    num_clients: int = 20
    classes_per_client: int = 2
    beta: float = 0.5


@dataclass
class FedConfig:
    method: str = "fedgela"
    seed: int = 0
    rounds: int = 10
    clients_per_round: int = 10
    data: FedDataConfig = field(default_factory=FedDataConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    model: str = "cnn_small"
    feature_dim: int = 64
    local_epochs: int = 1
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    prox_mu: float = 0.01
    gela_c: float | None = None  # FedGELA's C (None: K)
    tau: float = 10.0  # logit scale of ETF heads on normalised features
    nc_samples: int = 5000  # training samples used for the NC metrics of the aggregated model
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda
    client_gpus: float = 0.0  # simulation: fraction of a GPU reserved per client (e.g. 0.1 on one GPU)
    run_dir: str = ""


def load_fed_config(
    path: str | Path | Sequence[str | Path] | None, overrides: Sequence[str] | None = None
) -> FedConfig:
    """Merge the schema, YAML files (left to right, each after its ``defaults``) and ``key=value``
    overrides; errors name the valid keys."""
    out, sources = compose(FedConfig, path, overrides, "federated config")
    out.__dict__["_sources"] = sources
    if out.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {out.method!r}")
    if out.partition.kind not in ("pcdd", "dirichlet"):
        raise ConfigError(f"partition.kind must be pcdd or dirichlet, got {out.partition.kind!r}")
    if out.clients_per_round < 1 or out.clients_per_round > out.partition.num_clients:
        raise ConfigError(
            f"clients_per_round must be in [1, partition.num_clients={out.partition.num_clients}]"
        )
    if out.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {out.device!r}")
    if out.client_gpus < 0:
        raise ConfigError(f"client_gpus must be >= 0, got {out.client_gpus}")
    if out.device == "cuda" and out.client_gpus == 0:
        raise ConfigError(
            "device=cuda with client_gpus=0: Ray gives a simulated client no GPU unless it reserves "
            "one; set client_gpus to the fraction of a GPU per client (e.g. client_gpus=0.1)"
        )
    if out.rounds < 1:
        raise ConfigError("rounds must be >= 1")
    return out


def config_sources(c: FedConfig) -> list[str]:
    """The config files :func:`load_fed_config` merged into ``c``, in merge order (empty if built otherwise)."""
    return list(c.__dict__.get("_sources", []))
