"""Typed training configuration: dataclasses as an OmegaConf structured config, composed from any number
of YAML fragments (``configs/recipes``, ``configs/methods``, ``configs/align``; see :mod:`nclab.compose`)
and dotted overrides.

Unknown keys and wrong types are :class:`~nclab.errors.ConfigError` listing the valid keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from nclab.compose import compose
from nclab.errors import ConfigError


@dataclass
class DataConfig:
    name: str = "synthetic"  # synthetic | fmnist | cifar10 | cifar100 | imagenet_lt
    root: str | None = None
    # imagenet_lt: split lists (default ROOT/ImageNet_LT_train.txt and _test.txt), decode size, workers
    train_list: str | None = None
    test_list: str | None = None
    resize: int = 256
    crop: int = 224
    workers: int = 4
    imbalance: float = 100.0
    profile: str = "exp"  # exp | step (fmnist)
    augment: bool = False  # random crop (padding 4) + horizontal flip, batched on the device
    val_fraction: float = 0.0  # per-class validation split carved from training (model selection)
    # synthetic only
    num_classes: int = 10  # K: synthetic data; recipes also set it so fragments can use ${data.num_classes}
    n_max: int = 200
    dim: int = 32
    test_per_class: int = 50
    separation: float = 3.0


@dataclass
class ModelConfig:
    name: str = "mlp"
    feature_dim: int | None = 64
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeadConfig:
    name: str = "linear"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    name: str = "ce"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplerConfig:
    name: str = "instance"  # instance | class_balanced | square_root | progressive | drs
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4  # backbone weights
    head_weight_decay: float | None = None  # classifier weights (None: weight_decay)
    bias_weight_decay: float = 0.0  # biases and normalisation parameters


@dataclass
class SchedConfig:
    kind: str = "cosine"  # cosine | step | constant
    warmup_epochs: int = 0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class AlignConfig:
    """Space alignment (docs/align.md): any of proj, slerp, reg, in that order of application."""

    strategies: list[str] = field(default_factory=list)
    momentum: float = 0.9  # EMA of class means
    centered: bool = True
    proj_gamma: float = 0.6
    slerp_alpha: float = 0.02
    slerp_threshold: float = 0.95
    reg_lambda: float = 0.1
    reg_weighting: str = "uniform"  # uniform | count
    reg_side: str = "head"  # head | features | both


@dataclass
class Stage2Config:
    """Second stage on the frozen backbone after training (docs/losses.md): none, crt, tau_norm, lws, wb."""

    method: str = "none"
    epochs: int = 10
    lr: float = 0.1
    batch_size: int = 128
    val_fraction: float = 0.1  # tau_norm: tau searched on this per-class split of the training set
    max_norm: float = 1.0  # wb: MaxNorm threshold


@dataclass
class TrainSection:
    epochs: int = 5
    batch_size: int = 128
    eval_every: int = 1
    grad_clip: float | None = None
    seed: int = 0
    nc_tracking: bool = True
    nc_source: str = "eval"  # eval: an extra eval-mode pass over the training set | online: see docs
    nc_every: int = 1  # NC metrics at every this-many-th evaluation (and always at the last epoch)
    nc_rcond: float | None = None  # rank tolerance of Sigma_B^+ for nc1 (None: the exact pinv)
    nc_features: str = "raw"  # raw | unit: NC of the L2-normalised features and classifier rows
    mixup_alpha: float = 0.0  # mixup (Zhang et al. 2018) with Beta(alpha, alpha) mixing; 0 = off
    ckpt_every_steps: int = 0  # also checkpoint inside an epoch every this many steps (0: off)
    amp: str = "auto"  # auto (float16 on CUDA) | on (float16, CUDA) | bf16 (bfloat16, CUDA or CPU) | off
    channels_last: str = "auto"  # auto (on for CUDA) | on (also on CPU, ~1.4x for cnn_small) | off
    device: str = "auto"  # auto | cpu | cuda
    eval_batch_size: int = 256
    tensorboard: bool = False  # also log every evaluation to RUN_DIR/tb (needs the tensorboard package)
    log_every: int = 50  # read the loss on the host (progress bar, finiteness check) every this many steps
    deterministic: bool = False  # deterministic algorithms (exact resume on a GPU); else cuDNN autotuning
    sync_bn: bool = False  # under DDP: SyncBatchNorm (batch statistics over all ranks' batches)
    data_on_device: str = "auto"  # auto (in-memory data on the GPU) | on | off


@dataclass
class RunSection:
    name: str = "run"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    train: TrainSection = field(default_factory=TrainSection)
    run: RunSection = field(default_factory=RunSection)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, overrides: Sequence[str] = ()) -> Config:
        """The config the run in ``run_dir`` used (its ``config.yaml`` without ``meta``), then
        ``overrides`` (``key=value``), validated; nothing is written to the run directory.

        Raises:
            DataError: ``config.yaml`` is missing or not a YAML mapping (with what to do).
            ConfigError: it holds keys or values the schema rejects.
        """
        from nclab.rundir import RunDir

        run = RunDir(run_dir)
        run.config()  # a clear DataError for a missing or corrupt config.yaml
        try:  # composed like any config file; its ``meta`` block is not part of the schema
            return load_config(run.config_path, list(overrides))
        except ConfigError as err:
            raise ConfigError(f"cannot resume from {run.config_path}: {err}") from None


def load_config(
    path: str | Path | Sequence[str | Path] | None = None, overrides: Sequence[str] | None = None
) -> Config:
    """Schema <- YAML files (left to right, each after its ``defaults``) <- ``key=value`` overrides, validated.

    The files merged are kept on the returned config (:func:`config_sources`), for the run's ``meta``.
    """
    out, sources = compose(Config, path, overrides)
    # YAML reads on/off as booleans, which a str field stores as "True"/"False"
    for key in ("amp", "channels_last", "data_on_device"):
        value = str(getattr(out.train, key))
        setattr(out.train, key, {"true": "on", "false": "off"}.get(value.lower(), value))
    _validate(out)
    out.__dict__["_sources"] = sources
    return out


def config_sources(c: Config) -> list[str]:
    """The config files :func:`load_config` merged into ``c``, in merge order (empty if built otherwise)."""
    return list(c.__dict__.get("_sources", []))


def data_checks(
    d: DataConfig, names: Sequence[str] = ("synthetic", "fmnist", "cifar10", "cifar100", "imagenet_lt")
) -> list[tuple[bool, str]]:
    """(condition, message) checks of a data section, for ``nclab train`` and ``nclab fed`` (which
    passes the datasets it supports)."""
    return [
        (d.name in names, f"data.name must be {', '.join(names[:-1])} or {names[-1]}, got {d.name!r}"),
        (d.imbalance >= 1, "data.imbalance must be >= 1"),
        (0 <= d.val_fraction < 1, "data.val_fraction must be in [0, 1)"),
    ]


def _validate(c: Config) -> None:
    checks = [
        *data_checks(c.data),
        (c.optim.name in ("sgd", "adamw"), "optim.name must be sgd or adamw"),
        (c.sched.kind in ("cosine", "step", "constant"), "sched.kind must be cosine, step or constant"),
        (c.train.epochs >= 1, "train.epochs must be >= 1"),
        (c.train.batch_size >= 1, "train.batch_size must be >= 1"),
        (c.train.eval_every >= 1, "train.eval_every must be >= 1"),
        (c.optim.lr > 0, "optim.lr must be > 0"),
        (
            c.stage2.method in ("none", "crt", "tau_norm", "lws", "wb"),
            "stage2.method must be none, crt, tau_norm, lws or wb",
        ),
        (c.train.nc_every >= 1, "train.nc_every must be >= 1"),
        (c.train.nc_source in ("eval", "online"), "train.nc_source must be eval or online"),
        (c.train.nc_features in ("raw", "unit"), "train.nc_features must be raw or unit"),
        (
            not (c.train.nc_features == "unit" and c.train.nc_source == "online"),
            "train.nc_features=unit measures in the evaluation pass: use train.nc_source=eval",
        ),
        (
            not (c.train.nc_source == "online" and c.train.mixup_alpha > 0),
            "train.nc_source=online reads the training batches' features, which mixup mixes: use eval",
        ),
        (c.train.mixup_alpha >= 0, "train.mixup_alpha must be >= 0"),
        (c.train.amp in ("auto", "on", "off", "bf16"), "train.amp must be auto, on, off or bf16"),
        (c.train.log_every >= 1, "train.log_every must be >= 1"),
        (c.train.data_on_device in ("auto", "on", "off"), "train.data_on_device must be auto, on or off"),
        (c.train.channels_last in ("auto", "on", "off"), "train.channels_last must be auto, on or off"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def to_yaml(c: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(c))
