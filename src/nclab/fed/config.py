"""Typed configuration of a federated run (OmegaConf structured config, YAML fragments composed left to
right, see :mod:`nclab.compose`, then dotted overrides).

The ``data``, ``model`` and ``head`` sections are those of ``nclab train`` (:mod:`nclab.train.config`),
with federated defaults; ``local`` holds the clients' local training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nclab.compose import compose
from nclab.errors import ConfigError
from nclab.train.config import DataConfig, HeadConfig, ModelConfig, data_checks

METHODS = ("fedavg", "fedavg_etf", "fedprox", "fedgela")
GELA_HEADS = ("gela", "gela_authors")  # the heads method fedgela accepts (nclab's, the authors' code's)
AGGREGATE_BY = ("samples", "batches")
#: keys of the earlier flat schema (before the shared data/model/head sections) and where they live now
#: (a config setting one is refused, naming the new place)
MOVED = {
    "model": "model.name",
    "feature_dim": "model.feature_dim",
    "local_epochs": "local.epochs",
    "batch_size": "local.batch_size",
    "lr": "local.lr",
    "momentum": "local.momentum",
    "weight_decay": "local.weight_decay",
    "prox_mu": "local.prox_mu",
    "data.samples_per_class": "data.n_max",
}


@dataclass
class PartitionConfig:
    kind: str = "pcdd"  # pcdd | dirichlet
    num_clients: int = 20
    classes_per_client: int = 2
    beta: float = 0.5


@dataclass
class LocalConfig:
    """A client's local training in each round (SGD)."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    prox_mu: float = 0.01  # FedProx's mu (method fedprox only)
    grad_clip: float = 0.0  # clip the gradient's global L2 norm at this value before each step (0: off)
    drop_last: bool = False  # skip each epoch's last incomplete batch (FedGELA's code does)


@dataclass
class FedConfig:
    """A federated run (docs/fed.md): the method; the server's rounds and client sampling; centralised
    training's data, model and head sections; the partition; the clients' local training."""

    method: str = "fedgela"
    seed: int = 0
    rounds: int = 10
    clients_per_round: int = 10
    data: DataConfig = field(default_factory=lambda: DataConfig(name="fmnist", imbalance=1.0))
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="cnn_small"))
    head: HeadConfig = field(default_factory=lambda: HeadConfig(name=""))  # "": the method's head
    local: LocalConfig = field(default_factory=LocalConfig)
    aggregate_by: str = "samples"  # weight of a client in the server's mean: samples | batches (per epoch)
    gela_c: float | None = None  # FedGELA's C (None: K)
    gela_phi_min: float = 0.0  # floor of a held class's FedGELA scale phi (0: the paper's rule)
    gela_phi_max: float | None = None  # cap of a held class's FedGELA scale phi (None: the paper's rule)
    gela_phi_missing: float = 0.0  # FedGELA scale of a class the client does not hold (0: the paper's)
    tau: float = 10.0  # logit scale of the methods' ETF heads on normalised features
    nc_samples: int = 5000  # training samples used for the NC metrics of the aggregated model
    eval_every: int = 1  # evaluate every k rounds and at the last (checkpoint: every round)
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda
    client_gpus: float = 0.0  # simulation: fraction of a GPU reserved per client (e.g. 0.1 on one GPU)
    run_dir: str = ""


def method_head(cfg: FedConfig) -> tuple[str, dict[str, Any]]:
    """The head (registry name, options) of ``cfg``: ``head.name`` when set, else the method's own:
    linear (fedavg, fedprox), a fixed ETF on normalised features scaled by ``tau`` (fedavg_etf) or
    FedGELA's ``gela`` head; the ETF heads draw their ETF from the run's seed (``gela_authors`` too,
    unless its ``kwargs`` name a seed)."""
    if cfg.head.name == "gela_authors":
        return cfg.head.name, {"seed": cfg.seed, **dict(cfg.head.kwargs)}
    if cfg.head.name:
        return cfg.head.name, dict(cfg.head.kwargs)
    if cfg.method == "fedavg_etf":
        return "fixed_etf", {"normalize": True, "scale": cfg.tau, "seed": cfg.seed}
    if cfg.method == "fedgela":
        return "gela", {"tau": cfg.tau, "seed": cfg.seed}
    return "linear", {}


def gela_options(cfg: FedConfig) -> tuple[float | None, float, float | None, float]:
    """The arguments ``(c, floor, cap, missing)`` of :func:`nclab.heads.gela.gela_scales` that ``cfg``
    sets (``gela_c``, ``gela_phi_min``, ``gela_phi_max``, ``gela_phi_missing``)."""
    return cfg.gela_c, cfg.gela_phi_min, cfg.gela_phi_max, cfg.gela_phi_missing


def load_fed_config(
    path: str | Path | Sequence[str | Path] | None, overrides: Sequence[str] | None = None
) -> FedConfig:
    """Merge the schema, YAML files (left to right, each after its ``defaults``) and ``key=value``
    overrides; errors name the valid keys, and the new place of a key of the earlier flat schema."""
    out, sources = compose(FedConfig, path, overrides, "federated config", moved=MOVED)
    out.__dict__["_sources"] = sources
    d, p = out.data, out.partition
    checks = [
        (out.method in METHODS, f"method must be one of {', '.join(METHODS)}, got {out.method!r}"),
        *data_checks(d, ("fmnist", "cifar10", "cifar100", "synthetic")),
        (not d.augment, "data.augment is not used by federated runs: leave it unset"),
        (
            out.method != "fedgela" or out.head.name in ("", *GELA_HEADS),
            f"method fedgela needs a FedGELA head: leave head.name empty or set {' or '.join(GELA_HEADS)}, "
            f"got {out.head.name!r}",
        ),
        (
            out.gela_phi_min >= 0,
            f"gela_phi_min must be >= 0 (0: FedGELA's own scales), got {out.gela_phi_min}",
        ),
        (
            out.gela_phi_max is None or (out.gela_phi_max > 0 and out.gela_phi_max >= out.gela_phi_min),
            f"gela_phi_max must be > 0 and >= gela_phi_min ({out.gela_phi_min}), got {out.gela_phi_max} "
            "(null: no cap)",
        ),
        (
            out.gela_phi_missing >= 0,
            f"gela_phi_missing must be >= 0 (0: FedGELA's own scales), got {out.gela_phi_missing}",
        ),
        *(
            (
                getattr(out, key) == off or out.method == "fedgela",
                f"{key} changes FedGELA's scales: set method=fedgela or drop it (method is {out.method!r})",
            )
            for key, off in (("gela_phi_min", 0.0), ("gela_phi_max", None), ("gela_phi_missing", 0.0))
        ),
        (
            out.aggregate_by in AGGREGATE_BY,
            f"aggregate_by must be samples or batches, got {out.aggregate_by!r}",
        ),
        (
            out.local.grad_clip >= 0,
            f"local.grad_clip must be >= 0 (0: no clipping), got {out.local.grad_clip}",
        ),
        (out.local.batch_size >= 1, f"local.batch_size must be >= 1, got {out.local.batch_size}"),
        (p.kind in ("pcdd", "dirichlet"), f"partition.kind must be pcdd or dirichlet, got {p.kind!r}"),
        (
            1 <= out.clients_per_round <= p.num_clients,
            f"clients_per_round must be in [1, partition.num_clients={p.num_clients}]",
        ),
        (out.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {out.device!r}"),
        (out.client_gpus >= 0, f"client_gpus must be >= 0, got {out.client_gpus}"),
        (out.rounds >= 1, "rounds must be >= 1"),
        (out.eval_every >= 1, f"eval_every must be >= 1 (1: every round), got {out.eval_every}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    if out.device == "cuda" and out.client_gpus == 0:
        raise ConfigError(
            "device=cuda with client_gpus=0: Ray gives a simulated client no GPU unless it reserves "
            "one; set client_gpus to the fraction of a GPU per client (e.g. client_gpus=0.1)"
        )
    return out


def config_sources(c: FedConfig) -> list[str]:
    """The config files :func:`load_fed_config` merged into ``c``, in merge order (empty if built otherwise)."""
    return list(c.__dict__.get("_sources", []))
