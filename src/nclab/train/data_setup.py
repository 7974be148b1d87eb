"""Turn the data section of a config into tensors on the device and a batched preprocessing step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclab.data.lazy import LazyImages
from nclab.errors import ConfigError
from nclab.train.config import DataConfig
from nclab.train.device import to_device


@dataclass
class TrainData:
    train_x: torch.Tensor | LazyImages  # uint8 images (N, C, H, W), float features (N, d), or files
    train_y: torch.Tensor
    test_x: torch.Tensor | LazyImages
    test_y: torch.Tensor
    counts: list[int]
    class_names: list[str]
    mean: torch.Tensor | None  # (C,) normalisation for uint8 images
    std: torch.Tensor | None
    checksum: str
    in_channels: int
    in_features: int
    # per-class validation split (data.val_fraction), for model selection
    val_x: torch.Tensor | LazyImages | None = None
    val_y: torch.Tensor | None = None


def carve_validation(data: TrainData, fraction: float, seed: int) -> TrainData:
    """Move ``fraction`` of every class of the training set (seeded, at least one sample of each class
    with >= 2 samples) to ``val_x``/``val_y``; ``counts`` become the remaining training counts."""
    from nclab.data.split import validation_split

    tr, va = validation_split(data.train_y, fraction, seed)
    data.val_x, data.val_y = data.train_x[va], data.train_y[va]
    data.train_x, data.train_y = data.train_x[tr], data.train_y[tr]
    data.counts = torch.bincount(data.train_y, minlength=len(data.counts)).tolist()
    if min(data.counts) == 0:
        raise ConfigError(f"data.val_fraction={fraction} leaves a class without training samples: lower it")
    return data


def load_data(cfg: DataConfig, seed: int) -> TrainData:
    """Load the configured dataset into memory (uint8 images channel-first, or float features), with
    the validation split of ``cfg.val_fraction`` carved from the training set when it is > 0."""
    data = _load(cfg, seed)
    if cfg.val_fraction > 0:
        data = carve_validation(data, cfg.val_fraction, seed)
    return data


def _load(cfg: DataConfig, seed: int) -> TrainData:
    if cfg.name == "synthetic":
        import hashlib

        from nclab.data import gaussian_mixture
        from nclab.data.profiles import exponential

        counts = exponential(cfg.n_max, cfg.num_classes, cfg.imbalance)
        x, y = gaussian_mixture(
            [n + cfg.test_per_class for n in counts], cfg.dim, separation=cfg.separation, seed=seed
        )
        rank = torch.arange(len(y)) - torch.searchsorted(y, y)
        test = rank < cfg.test_per_class
        checksum = hashlib.sha256(x.numpy().tobytes()).hexdigest()
        names = [str(i) for i in range(cfg.num_classes)]
        return TrainData(
            x[~test], y[~test], x[test], y[test], counts, names, None, None, checksum, 1, cfg.dim
        )
    if cfg.name == "imagenet_lt":
        return _imagenet_lt(cfg)
    if cfg.name == "fmnist":
        from nclab.data import fashion_mnist_lt

        tr = fashion_mnist_lt(cfg.root, cfg.imbalance, profile=cfg.profile, seed=seed)
        te = fashion_mnist_lt(cfg.root, 1.0, train=False)
    elif cfg.name in ("cifar10", "cifar100"):
        from nclab.data import cifar_lt

        if cfg.root is None:
            raise ConfigError("data.root must name the directory holding the CIFAR python folders")
        tr = cifar_lt(cfg.root, cfg.name, cfg.imbalance, seed=seed)
        te = cifar_lt(cfg.root, cfg.name, 1.0, train=False)
    else:
        raise ConfigError(f"unknown data.name {cfg.name!r}")

    def chw(img: torch.Tensor) -> torch.Tensor:
        return img.unsqueeze(1) if img.ndim == 3 else img.permute(0, 3, 1, 2).contiguous()

    trx, tex = chw(tr.images), chw(te.images)
    return TrainData(
        trx,
        tr.labels,
        tex,
        te.labels,
        list(tr.counts),
        list(tr.class_names),
        torch.tensor(tr.mean),
        torch.tensor(tr.std),
        tr.selection_sha256,
        trx.shape[1],
        int(trx[0].numel()),
    )


def _imagenet_lt(cfg: DataConfig) -> TrainData:
    """ImageNet-LT from its split lists under ``data.root``: decoded by DataLoader workers per batch."""
    import hashlib
    from pathlib import Path

    from nclab.data.imagenet_lt import IMAGENET_MEAN, IMAGENET_STD, ImageListDataset

    if cfg.root is None:
        raise ConfigError("data.root must name the ImageNet-LT image root (holding the split lists)")
    root = Path(cfg.root)
    tr_list = Path(cfg.train_list) if cfg.train_list else root / "ImageNet_LT_train.txt"
    te_list = Path(cfg.test_list) if cfg.test_list else root / "ImageNet_LT_test.txt"
    kw = dict(resize=cfg.resize, crop=cfg.crop)
    tr, te = ImageListDataset(root, tr_list, **kw), ImageListDataset(root, te_list, **kw)
    k = int(max(tr.labels.max(), te.labels.max())) + 1  # classes of either split
    tr.counts = torch.bincount(tr.labels, minlength=k).tolist()
    if min(tr.counts) == 0:
        missing = [c for c, n in enumerate(tr.counts) if n == 0]
        raise ConfigError(f"{tr_list} has no training image of classes {missing[:10]}")
    digest = hashlib.sha256("\n".join(f"{p} {y}" for p, y in zip(tr.paths, tr.labels.tolist())).encode())
    return TrainData(
        LazyImages(tr, num_workers=cfg.workers),
        tr.labels,
        LazyImages(te, num_workers=cfg.workers),
        te.labels,
        list(tr.counts),
        [str(c) for c in range(k)],
        torch.tensor(IMAGENET_MEAN),
        torch.tensor(IMAGENET_STD),
        digest.hexdigest(),
        3,
        3 * cfg.crop * cfg.crop,
    )


def preprocess(
    x: torch.Tensor,
    data: TrainData,
    *,
    augment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 batch -> normalised float (optionally random crop with 4-pixel padding and horizontal
    flip, drawn from ``generator``, all batched: no per-image Python work); float features pass."""
    if data.mean is None:
        return x.float()
    xf = x.float().div_(255.0)
    if augment:
        b, _, h, w = xf.shape
        dev = xf.device
        padded = torch.nn.functional.pad(xf, (4, 4, 4, 4))
        # drawn on the host (the same crops on every device), copied without blocking on the GPU
        dx = to_device(torch.randint(0, 9, (b,), generator=generator), dev)
        dy = to_device(torch.randint(0, 9, (b,), generator=generator), dev)
        rows = dy[:, None] + torch.arange(h, device=dev)[None, :]  # (B, H)
        cols = dx[:, None] + torch.arange(w, device=dev)[None, :]  # (B, W)
        idx_b = torch.arange(b, device=dev)[:, None, None]
        xf = padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        flip = to_device(torch.rand(b, generator=generator) < 0.5, dev)
        xf = torch.where(flip[:, None, None, None], xf.flip(3), xf)
    mean = to_device(data.mean, xf.device)[None, :, None, None]
    std = to_device(data.std, xf.device)[None, :, None, None]
    return (xf - mean) / std
