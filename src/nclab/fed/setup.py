"""Everything a federated run derives from its config: data, partition, ETF, model factory.

Built once per process (``get_setup``) so that Flower's simulation workers load the data once; every
piece is a deterministic function of the config and its seed, so the server and all clients agree on
the partition and on the ETF without sending them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from nclab.errors import ConfigError
from nclab.fed.config import FedConfig
from nclab.fed.gela import ETFHead
from nclab.fed.local import FedModel
from nclab.fed.partition import client_counts, dirichlet_partition, pcdd_partition


@dataclass
class FedSetup:
    cfg: FedConfig
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    counts: list[int]
    class_names: list[str]
    parts: list[torch.Tensor]
    client_counts: list[list[int]]
    etf: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    def build_model(self) -> FedModel:
        """A fresh model, initialised identically from the run's seed on every side."""
        from nclab.heads import create_head
        from nclab.models import create_model

        torch.manual_seed(self.cfg.seed)
        cfg = self.cfg
        if cfg.model == "mlp":
            backbone = create_model("mlp", in_features=self.train_x[0].numel(), feature_dim=cfg.feature_dim)
        else:
            backbone = create_model(cfg.model, in_channels=self.train_x.shape[1], feature_dim=cfg.feature_dim)
        dim = backbone.num_features
        if cfg.method in ("fedavg", "fedprox"):
            head = create_head("linear", dim, self.num_classes)
        else:
            head = ETFHead(self.etf, tau=cfg.tau)
        return FedModel(backbone, head).to(self.device)

    @property
    def device(self) -> torch.device:
        if self.cfg.device == "cuda" or (self.cfg.device == "auto" and torch.cuda.is_available()):
            return torch.device("cuda")
        return torch.device("cpu")

    def client_train(self, pid: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.parts[pid]
        return self.train_x[idx], self.train_y[idx]

    def client_test(self, pid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Test samples of the classes client ``pid`` holds (for personal accuracy)."""
        held = torch.tensor([c for c, n in enumerate(self.client_counts[pid]) if n > 0])
        mask = torch.isin(self.test_y, held)
        return self.test_x[mask], self.test_y[mask]


_CACHE: dict[str, FedSetup] = {}


def get_setup(cfg: FedConfig) -> FedSetup:
    """The setup of ``cfg``, built once per process."""
    key = hashlib.sha256(OmegaConf.to_yaml(OmegaConf.structured(cfg)).encode()).hexdigest()
    if key not in _CACHE:
        _CACHE[key] = build_setup(cfg)
    return _CACHE[key]


def _load_data(cfg: FedConfig):
    d = cfg.data
    if d.name == "fmnist":
        from nclab.data import fashion_mnist_lt

        tr = fashion_mnist_lt(d.root, d.imbalance, profile=d.profile, seed=cfg.seed, train=True)
        te = fashion_mnist_lt(d.root, 1.0, seed=cfg.seed, train=False)

        def prep(ds):
            x = ds.images.float().div(255.0)
            x = (x - 0.2860) / 0.3530  # Fashion-MNIST mean/std
            return x.unsqueeze(1), ds.labels.long()

        trx, try_ = prep(tr)
        tex, tey = prep(te)
        return trx, try_, tex, tey, list(tr.counts), list(getattr(tr, "class_names", []))
    if d.name in ("cifar10", "cifar100"):
        from nclab.data import cifar_lt

        if d.root is None:
            raise ConfigError("data.root must name the directory holding the CIFAR python folders")
        tr = cifar_lt(d.root, d.name, d.imbalance, seed=cfg.seed)
        te = cifar_lt(d.root, d.name, 1.0, train=False)
        mean, std = torch.tensor(tr.mean)[None, :, None, None], torch.tensor(tr.std)[None, :, None, None]

        def prep_rgb(ds):
            x = ds.images.permute(0, 3, 1, 2).float().div(255.0)
            return (x - mean) / std, ds.labels.long()

        trx, try_ = prep_rgb(tr)
        tex, tey = prep_rgb(te)
        return trx, try_, tex, tey, list(tr.counts), list(tr.class_names)
    if d.name == "synthetic":
        from nclab.data import gaussian_mixture
        from nclab.data.profiles import exponential

        counts = exponential(d.samples_per_class, d.num_classes, d.imbalance)
        # one draw (same class centres), then the first test_per_class samples of each class are test
        x, y = gaussian_mixture([n + d.test_per_class for n in counts], d.dim, seed=cfg.seed)
        rank = torch.arange(len(y)) - torch.searchsorted(y, y)  # position inside its class
        test = rank < d.test_per_class
        return x[~test], y[~test], x[test], y[test], counts, [str(i) for i in range(d.num_classes)]
    raise ConfigError(f"data.name must be fmnist, cifar10, cifar100 or synthetic, got {d.name!r}")


def build_setup(cfg: FedConfig) -> FedSetup:
    from nclab.geometry import simplex_etf

    trx, try_, tex, tey, counts, names = _load_data(cfg)
    k = len(counts)
    p = cfg.partition
    if p.kind == "pcdd":
        parts = pcdd_partition(try_, p.num_clients, p.classes_per_client, num_classes=k, seed=cfg.seed)
    else:
        parts = dirichlet_partition(try_, p.num_clients, p.beta, num_classes=k, seed=cfg.seed)
    etf = simplex_etf(k, cfg.feature_dim, generator=torch.Generator().manual_seed(cfg.seed))
    return FedSetup(
        cfg=cfg,
        train_x=trx,
        train_y=try_,
        test_x=tex,
        test_y=tey,
        counts=counts,
        class_names=names or [str(i) for i in range(k)],
        parts=parts,
        client_counts=client_counts(try_, parts, k),
        etf=etf.float(),
    )
