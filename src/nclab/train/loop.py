"""The training loop (nanoGPT style: the whole loop on one screen, features attach through hooks).

Determinism and exact resume: the batch order of epoch e is the sampler's ``indices(e)``, drawn
from a generator seeded with (seed, e), and the augmentation of step s from one seeded with (seed, s); no global RNG is
used after the model's initialisation. A checkpoint therefore needs only the model, head, optimizer,
scheduler, scaler, hook states and the position (epoch, step in epoch): a run killed at any point
and resumed with ``--resume`` writes the same ``metrics.jsonl`` as an uninterrupted run (on CPU).
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nclab import __version__, rundir
from nclab.data.lazy import iter_batches
from nclab.errors import NclabError
from nclab.metrics import FeatureStats
from nclab.train import checkpoint as ckpt
from nclab.train.config import Config, to_yaml
from nclab.train.data_setup import TrainData, load_data, preprocess
from nclab.train.evaluate import evaluate
from nclab.train.hooks import HookContext, TrainHook


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _device(cfg: Config) -> torch.device:
    if cfg.train.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.train.device)


def build_modules(cfg: Config, data: TrainData) -> tuple[nn.Module, nn.Module]:
    from nclab.heads import create_head
    from nclab.models import create_model

    torch.manual_seed(cfg.train.seed)
    kw = dict(cfg.model.kwargs)
    kw.setdefault("in_channels", data.in_channels)
    kw.setdefault("in_features", data.in_features)
    model = create_model(cfg.model.name, feature_dim=cfg.model.feature_dim, **kw)
    head = create_head(cfg.head.name, model.num_features, len(data.counts), **dict(cfg.head.kwargs))
    return model, head


def build_optimizer(cfg: Config, model: nn.Module, head: nn.Module) -> torch.optim.Optimizer:
    """Param groups: backbone weights, head weights, biases and normalisation parameters."""
    o = cfg.optim
    head_wd = o.weight_decay if o.head_weight_decay is None else o.head_weight_decay
    groups: dict[str, list[nn.Parameter]] = {"backbone": [], "head": [], "bias": []}
    for mod, key in ((model, "backbone"), (head, "head")):
        for _, p in mod.named_parameters():
            if not p.requires_grad:
                continue
            groups["bias" if p.ndim <= 1 else key].append(p)
    params = [
        {"params": groups["backbone"], "weight_decay": o.weight_decay},
        {"params": groups["head"], "weight_decay": head_wd},
        {"params": groups["bias"], "weight_decay": o.bias_weight_decay},
    ]
    params = [g for g in params if g["params"]]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    return torch.optim.AdamW(params, lr=o.lr)


def lr_factor(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 0 or step decay at the milestones (epochs)."""
    s = cfg.sched
    epoch_f = step / steps_per_epoch
    if s.warmup_epochs and epoch_f < s.warmup_epochs:
        return (step + 1) / (s.warmup_epochs * steps_per_epoch)
    if s.kind == "cosine":
        total = cfg.train.epochs * steps_per_epoch
        warm = s.warmup_epochs * steps_per_epoch
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    if s.kind == "step":
        return s.gamma ** sum(epoch_f >= m for m in s.milestones)
    return 1.0


class _Net(nn.Module):
    """Backbone + head as one module, so that DDP synchronises both."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x):
        feats = self.model(x)
        return feats, self.head(feats)


def _init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world) from torchrun's environment; initialises the process group when world > 1."""
    import os

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


class Trainer:
    """One training run in a run directory (see docs/contracts.md).

    Under ``torchrun --nproc_per_node N -m nclab train ...`` it uses DDP: ``train.batch_size`` is the
    global batch, each rank takes every N-th index of it, gradients are averaged, NC statistics are
    summed across ranks and only rank 0 writes the run directory.
    """

    def __init__(
        self, cfg: Config, run_dir: str | Path, *, hooks: list[TrainHook] | None = None, resume: bool = False
    ):
        self.cfg, self.dir = cfg, Path(run_dir)
        self.device = _device(cfg)
        if self.device.type == "cuda":
            import os

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        self.rank, self.world = _init_distributed(self.device)
        # one writer per run directory (nclab.rundir.RunLock), taken before anything is written
        self._lock = rundir.RunLock(self.dir).acquire() if self.rank == 0 else None
        if self._lock is not None:
            rundir.remove_stale_temporaries(self.dir)  # left by a kill during an atomic write
        self.data = load_data(cfg.data, cfg.train.seed)
        self.model, self.head = build_modules(cfg, self.data)
        self.model.to(self.device)
        self.head.to(self.device)
        self.net: nn.Module = _Net(self.model, self.head)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.net)
        self.use_amp = self.device.type == "cuda" and cfg.train.amp in ("auto", "on")
        cl = cfg.train.channels_last
        if cl == "on" or (cl == "auto" and self.device.type == "cuda"):
            self.model.to(memory_format=torch.channels_last)
        from nclab.losses import create_loss

        self.loss_fn = create_loss(cfg.loss.name, self.data.counts, **dict(cfg.loss.kwargs))
        self.opt = build_optimizer(cfg, self.model, self.head)
        from nclab.data.samplers import create_sampler

        skw = dict(cfg.sampler.kwargs)
        if cfg.sampler.name == "progressive":
            skw.setdefault("epochs", cfg.train.epochs)
        self.sampler = create_sampler(
            cfg.sampler.name, self.data.train_y, self.data.counts, seed=cfg.train.seed, **skw
        )
        n = len(self.data.train_y)
        self.steps_per_epoch = math.ceil(n / cfg.train.batch_size)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(cfg, s, self.steps_per_epoch)
        )
        self.scaler = torch.amp.GradScaler(enabled=self.use_amp)
        self.hooks = list(hooks or [])
        if cfg.align.strategies:
            from nclab.align import build_hooks

            self.hooks += build_hooks(
                cfg.align, self.head, len(self.data.counts), self.model.num_features, self.data.counts
            )
        if hasattr(self.head, "update_means"):
            self.hooks.insert(0, _HeadMeansHook())
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.ctx = HookContext(
            self.model,
            self.head,
            total_steps=cfg.train.epochs * self.steps_per_epoch,
            steps_per_epoch=self.steps_per_epoch,
            epochs=cfg.train.epochs,
            device=self.device,
        )
        self.tb = None
        if cfg.train.tensorboard and self.rank == 0:
            from nclab.train.tensorboard import TensorBoardLogger

            self.tb = TensorBoardLogger(self.dir)
        # train.nc_source=online: training-feature statistics gathered from the epoch's own batches
        self.online = cfg.train.nc_tracking and cfg.train.nc_source == "online"
        self.online_stats = FeatureStats(len(self.data.counts), self.model.num_features, device=self.device)
        self.online_loss = 0.0
        self.t0 = time.time()
        self.elapsed_before = 0.0
        if resume:
            self._load(self.dir / "checkpoints" / "last.pt")
        else:
            if (self.dir / "metrics.jsonl").exists():
                raise NclabError(
                    f"{self.dir} already holds a run: use --resume {self.dir} or another --run-dir"
                )
            if self.rank == 0:
                self._write_static()

    # -- run directory ------------------------------------------------------------------------------
    def _write_static(self) -> None:
        (self.dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (self.dir / "geometry").mkdir(exist_ok=True)
        meta = {
            "nclab": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "data_checksum": self.data.checksum,
            "counts": self.data.counts,
        }
        text = to_yaml(self.cfg) + "meta:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in meta.items())
        (self.dir / "config.yaml").write_text(text)
        (self.dir / "classes.json").write_text(
            json.dumps({"names": self.data.class_names, "counts": self.data.counts})
        )

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "hooks": [h.state_dict() for h in self.hooks],
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "elapsed": self.elapsed_before + time.time() - self.t0,
            "torch_rng": torch.get_rng_state(),
            "online_stats": self.online_stats.state_dict(),
            "online_loss": self.online_loss,
        }

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise NclabError(f"cannot resume: {path} does not exist")
        s = ckpt.load(path, required=("model", "head", "optimizer", "epoch", "step_in_epoch", "torch_rng"))
        self.model.load_state_dict(s["model"])
        self.head.load_state_dict(s["head"])
        self.opt.load_state_dict(s["optimizer"])
        self.sched.load_state_dict(s["scheduler"])
        self.scaler.load_state_dict(s["scaler"])
        for h, hs in zip(self.hooks, s["hooks"]):
            h.load_state_dict(hs)
        torch.set_rng_state(s["torch_rng"])
        self.epoch, self.step_in_epoch, self.global_step = s["epoch"], s["step_in_epoch"], s["global_step"]
        self.elapsed_before = s["elapsed"]
        if "online_stats" in s:
            self.online_stats.load_state_dict(s["online_stats"])
            self.online_loss = s["online_loss"]
        if self.rank == 0:  # drop evaluations written after this checkpoint (and a torn last line)
            s2_done = (self.dir / "stage2.done").exists()
            rundir.truncate_rows(
                self.dir / "metrics.jsonl",
                lambda r: r.get("epoch", 0) <= self.epoch and (s2_done or "stage" not in r),
            )

    def _checkpoint(self) -> None:
        if self.rank == 0:
            ckpt.save_atomic(self._state(), self.dir / "checkpoints" / "last.pt")

    def close(self) -> None:
        """Release the run directory's lock (idempotent; :meth:`fit` calls it when it returns or fails)."""
        if self._lock is not None:
            self._lock.release()

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train to ``train.epochs`` (then stage 2, if configured); returns the run directory."""
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> Path:
        cfg, d, dev = self.cfg, self.data, self.device
        bs = cfg.train.batch_size
        for h in self.hooks:
            h.on_train_start(self.ctx)
        from tqdm import tqdm

        while self.epoch < cfg.train.epochs:
            order = self.sampler.indices(self.epoch)  # deterministic in (seed, epoch)
            self.ctx.epoch = self.epoch
            if hasattr(self.loss_fn, "set_epoch"):  # deferred re-weighting and other schedules
                self.loss_fn.set_epoch(self.epoch)
            for h in self.hooks:
                h.on_epoch_start(self.ctx)
            if self.step_in_epoch == 0:  # a new epoch (not a mid-epoch resume): fresh online statistics
                self.online_stats = FeatureStats(len(d.counts), self.model.num_features, device=dev)
                self.online_loss = 0.0
            bar = tqdm(
                range(self.step_in_epoch, self.steps_per_epoch),
                desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}",
                leave=False,
                disable=None,
            )
            # this rank's share of every remaining batch; decoded by DataLoader workers for file data
            idx_batches = [
                order[s * bs : (s + 1) * bs][self.rank :: self.world]
                for s in range(self.step_in_epoch, self.steps_per_epoch)
            ]
            for s, idx, xb in zip(bar, idx_batches, iter_batches(d.train_x, idx_batches)):
                # -- batch
                gen = torch.Generator().manual_seed(_seed(cfg.train.seed, self.global_step, 1))
                x = preprocess(xb.to(dev), d, augment=cfg.data.augment, generator=gen)
                y = d.train_y[idx].to(dev)
                mix = None
                if cfg.train.mixup_alpha > 0:  # mixup: convex pairs of inputs, the same pairs of losses
                    x, mix = mixup_batch(x, cfg.train.mixup_alpha, gen)
                # -- forward and backward
                with torch.autocast(dev.type, enabled=self.use_amp):
                    feats, logits = self.net(x)
                    loss = self._loss(feats, logits, y)
                    if mix is not None:
                        lam, perm = mix
                        loss = lam * loss + (1.0 - lam) * self._loss(feats, logits, y[perm.to(dev)])
                self.ctx.step = self.global_step
                if self.online:  # this rank's batch; summed over ranks at evaluation
                    self.online_stats.update(feats.detach().float(), y)
                    self.online_loss += float(loss.detach()) * len(y)
                for h in self.hooks:
                    h.on_batch(feats.detach(), y, self.ctx)
                    extra = h.extra_loss(feats, logits, y, self.ctx)
                    if extra is not None:
                        loss = loss + extra
                if not torch.isfinite(loss):
                    raise NclabError(
                        f"loss became {float(loss)} at epoch {self.epoch + 1}, step {s}: lower optim.lr"
                    )
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.opt)
                for h in self.hooks:
                    h.after_backward(self.ctx)
                if cfg.train.grad_clip:
                    nn.utils.clip_grad_norm_(
                        [p for g in self.opt.param_groups for p in g["params"]], cfg.train.grad_clip
                    )
                # -- step
                self.scaler.step(self.opt)
                self.scaler.update()
                self.sched.step()
                for h in self.hooks:
                    h.after_step(self.ctx)
                self.global_step += 1
                self.step_in_epoch = s + 1
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                # -- mid-epoch checkpoint
                if (
                    cfg.train.ckpt_every_steps
                    and self.global_step % cfg.train.ckpt_every_steps == 0
                    and self.step_in_epoch < self.steps_per_epoch
                ):
                    self._checkpoint()
            # -- end of epoch: evaluate, log, checkpoint
            for h in self.hooks:
                h.on_epoch_end(self.ctx)
            self.epoch += 1
            self.step_in_epoch = 0
            if self.epoch % cfg.train.eval_every == 0 or self.epoch == cfg.train.epochs:
                nc_period = cfg.train.eval_every * cfg.train.nc_every
                self._evaluate_and_log(nc=self.epoch % nc_period == 0 or self.epoch == cfg.train.epochs)
            self._checkpoint()
        if self.cfg.stage2.method != "none" and self.rank == 0 and not (self.dir / "stage2.done").exists():
            self._stage2()
        return self.dir

    def _loss(self, feats: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if getattr(self.loss_fn, "needs_features", False):  # e.g. dot regression
            return self.loss_fn(feats.float(), y, self.head.weight)
        return self.loss_fn(logits.float(), y)

    def _stage2(self) -> None:
        """Two-stage method on the frozen backbone (nclab.train.two_stage); one extra metrics.jsonl row
        with ``stage`` = the method, evaluated exactly like the training epochs."""
        from nclab.train import two_stage as ts

        s2, d = self.cfg.stage2, self.data
        bs = self.cfg.train.eval_batch_size
        feats = ts.frozen_features(
            self.model, d.train_x, lambda x: preprocess(x.to(self.device), d), bs
        ).float()
        y = d.train_y.to(feats.device)
        kw = dict(epochs=s2.epochs, lr=s2.lr, batch_size=s2.batch_size, seed=self.cfg.train.seed)
        head = self.head
        info: dict[str, Any] = {"stage": s2.method}
        if s2.method == "crt":
            from nclab.heads import create_head

            head = ts.crt(
                lambda: create_head(
                    self.cfg.head.name, self.model.num_features, len(d.counts), **dict(self.cfg.head.kwargs)
                ).to(feats.device),
                feats,
                y,
                d.counts,
                **kw,
            )
        elif s2.method == "lws":
            head = ts.lws(self.head, feats, y, d.counts, **kw)
            head = _linear_from(head.scale[:, None] * head.weight, head.scale * head.fixed_bias)
        elif s2.method == "wb":
            head = ts.weight_balancing_stage2(self.head, feats, y, d.counts, max_norm=s2.max_norm, **kw)
        elif s2.method == "tau_norm":
            w = self.head.weight.detach()
            bias = self.head.bias.detach() if getattr(self.head, "bias", None) is not None else None
            if d.val_x is not None:  # the run's own held-out split (data.val_fraction)
                vf = ts.frozen_features(
                    self.model, d.val_x, lambda x: preprocess(x.to(self.device), d), bs
                ).float()
                vy = d.val_y.to(vf.device)
            else:  # carved from the training features
                _, va = ts.validation_split(y.cpu(), s2.val_fraction, self.cfg.train.seed)
                vf, vy = feats[va], y[va]
            tau, val_acc = ts.search_tau(w, bias, vf, vy)
            head = _linear_from(ts.tau_normalize(w, tau), bias)
            info.update({"stage2/tau": tau, "stage2/val_balanced_acc": val_acc})
        row, geom = evaluate(
            self.model, head, self.loss_fn, d, self.device, nc=self.cfg.train.nc_tracking, bs=bs
        )
        out = {"epoch": self.epoch, "step": self.global_step, "lr": None, **info, **row}
        np.savez(self.dir / "geometry" / f"{self.epoch}_{s2.method}.npz", **geom)
        rundir.append_row(self.dir / "metrics.jsonl", out)
        (self.dir / "stage2.done").write_text(s2.method)
        print(f"stage 2 ({s2.method}): acc {row['acc/all']:.4f}", flush=True)

    def _evaluate_and_log(self, nc: bool = True) -> None:
        row, geom = evaluate(
            self.model,
            self.head,
            self.loss_fn,
            self.data,
            self.device,
            nc=self.cfg.train.nc_tracking and nc,
            bs=self.cfg.train.eval_batch_size,
            rank=self.rank,
            world=self.world,
            train_stats=self.online_stats if self.online else None,
            train_loss_sum=self.online_loss,
        )
        if self.rank != 0:  # only rank 0 writes
            return
        out = {"epoch": self.epoch, "step": self.global_step, "lr": self.opt.param_groups[0]["lr"], **row}
        np.savez(self.dir / "geometry" / f"{self.epoch}.npz", **geom)
        rundir.append_row(self.dir / "metrics.jsonl", out)
        if self.tb is not None:
            self.tb.log(out, self.epoch)
        acc = row["acc/all"]
        few = row.get("acc/few")
        print(
            f"epoch {self.epoch}/{self.cfg.train.epochs}: acc {acc:.4f}"
            + (f" few {few:.4f}" if few is not None else "")
            + (f" nc1 {row['nc/nc1']:.4g}" if isinstance(row.get("nc/nc1"), float) else ""),
            flush=True,
        )


def mixup_batch(
    x: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, tuple[float, torch.Tensor]]:
    """Mixup (Zhang et al., ICLR 2018): lam ~ Beta(alpha, alpha), x' = lam x + (1 - lam) x[perm].

    Returns x' and (lam, perm); the loss is lam L(y) + (1 - lam) L(y[perm]). Drawn from ``generator`` so
    that a resumed run mixes the same pairs."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    return lam * x + (1.0 - lam) * x[perm.to(x.device)], (lam, perm)


def _linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A linear head holding the given (effective) classifier."""
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).to(weight.device)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


class _HeadMeansHook(TrainHook):
    """Feeds the nearest-ETF head's EMA of class means every step."""

    def on_batch(self, features, labels, ctx):
        ctx.head.update_means(features, labels)
