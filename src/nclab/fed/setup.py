"""Everything a federated run derives from its config: data, partition, model factory.

Built once per process (``get_setup``) so that Flower's simulation workers load the data once; every
piece is a deterministic function of the config and its seed, so the server and all clients agree on
the partition and on the fixed ETF heads without sending them. The data are ``nclab train``'s
(:func:`nclab.train.data_setup.load_data`), preprocessed once for the whole run; with
``data.val_fraction`` > 0 the validation split is carved from every class of the training set before
the partition, so the clients never train on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from nclab.fed.config import FedConfig, method_head
from nclab.fed.partition import client_counts, dirichlet_partition, pcdd_partition
from nclab.models.network import Network
from nclab.train.data_setup import TrainData


@dataclass
class FedSetup:
    cfg: FedConfig
    data: TrainData  # train_x and test_x preprocessed (normalised floats)
    parts: list[torch.Tensor]
    client_counts: list[list[int]]

    @property
    def num_classes(self) -> int:
        return len(self.data.counts)

    def build_model(self) -> Network:
        """A fresh model, initialised identically from the run's seed on every side."""
        from nclab.train.build import build_network

        name, kwargs = method_head(self.cfg)
        return Network(*build_network(self.cfg.model, name, kwargs, self.data, self.cfg.seed)).to(self.device)

    @property
    def device(self) -> torch.device:
        from nclab.train.device import device_of

        return device_of(self.cfg.device)

    def client_train(self, pid: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.parts[pid]
        return self.data.train_x[idx], self.data.train_y[idx]

    def client_test(self, pid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Test samples of the classes client ``pid`` holds (for personal accuracy)."""
        held = torch.tensor([c for c, n in enumerate(self.client_counts[pid]) if n > 0])
        mask = torch.isin(self.data.test_y, held)
        return self.data.test_x[mask], self.data.test_y[mask]


_CACHE: dict[str, FedSetup] = {}


def get_setup(cfg: FedConfig) -> FedSetup:
    """The setup of ``cfg``, built once per process."""
    key = hashlib.sha256(OmegaConf.to_yaml(OmegaConf.structured(cfg)).encode()).hexdigest()
    if key not in _CACHE:
        _CACHE[key] = build_setup(cfg)
    return _CACHE[key]


def build_setup(cfg: FedConfig) -> FedSetup:
    from nclab.train.data_setup import load_data, preprocess

    data = load_data(cfg.data, cfg.seed)
    data.train_x, data.test_x = preprocess(data.train_x, data), preprocess(data.test_x, data)
    if data.val_x is not None:  # data.val_fraction: carved per class by load_data, before partitioning
        data.val_x = preprocess(data.val_x, data)
    data.mean = data.std = None  # normalised once: preprocess passes the floats through from here on
    y, k, p = data.train_y, len(data.counts), cfg.partition
    if p.kind == "pcdd":
        parts = pcdd_partition(y, p.num_clients, p.classes_per_client, num_classes=k, seed=cfg.seed)
    else:
        parts = dirichlet_partition(y, p.num_clients, p.beta, num_classes=k, seed=cfg.seed)
    return FedSetup(cfg, data, parts, client_counts(y, parts, k))
