"""Typed configuration of a federated run (OmegaConf structured config, YAML + dotted overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nclab.errors import ConfigError

METHODS = ("fedavg", "fedavg_etf", "fedprox", "fedgela")


@dataclass
class FedDataConfig:
    name: str = "fmnist"  # fmnist | synthetic
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
    run_dir: str = MISSING


def load_fed_config(path: str | Path | None, overrides: list[str] | None = None) -> FedConfig:
    """Merge the schema, a YAML file and ``key=value`` overrides; errors name the valid keys."""
    schema = OmegaConf.structured(FedConfig)
    try:
        cfg = schema
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"config file {str(p)!r} does not exist")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(p))
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        valid = ", ".join(_keys(OmegaConf.to_container(schema, resolve=False)))
        raise ConfigError(f"invalid federated config: {err.msg}. Valid keys: {valid}") from None
    out: FedConfig = OmegaConf.to_object(cfg) if not OmegaConf.is_missing(cfg, "run_dir") else None  # type: ignore
    if out is None:
        cfg.run_dir = ""
        out = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    if out.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {out.method!r}")
    if out.partition.kind not in ("pcdd", "dirichlet"):
        raise ConfigError(f"partition.kind must be pcdd or dirichlet, got {out.partition.kind!r}")
    if out.clients_per_round < 1 or out.clients_per_round > out.partition.num_clients:
        raise ConfigError(
            f"clients_per_round must be in [1, partition.num_clients={out.partition.num_clients}]"
        )
    if out.rounds < 1:
        raise ConfigError("rounds must be >= 1")
    return out


def _keys(d: Any, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out
