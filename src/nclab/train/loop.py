"""The training loop (nanoGPT style: the whole loop on one screen, features attach through hooks).

Determinism and exact resume: the batch order of epoch e is the sampler's ``indices(e)``, drawn
from a generator seeded with (seed, e), and the augmentation of step s from one seeded with (seed, s); no global RNG is
used after the model's initialisation. A checkpoint therefore needs only the model, head, optimizer,
scheduler, scaler, hook states and the position (epoch, step in epoch): a run killed at any point
and resumed with ``--resume`` writes the same ``metrics.jsonl`` as an uninterrupted run (on CPU).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nclab import __version__
from nclab.data.lazy import iter_batches
from nclab.errors import NclabError
from nclab.models.network import Network
from nclab.rundir import RunDir, with_meta
from nclab.train.build import build_modules, build_optimizer, lr_factor  # noqa: F401  (public here too)
from nclab.train.builtin_hooks import (
    HeadMeans,
    LossSchedule,
    Mixup,
    OnlineNC,
    mixup_batch,  # noqa: F401  (public here since 0.1)
)
from nclab.train.config import Config, config_sources, to_yaml
from nclab.train.data_setup import load_data, preprocess
from nclab.train.device import (  # noqa: F401  (steps_per_epoch, amp_dtype, to_device: public here too)
    amp_dtype,
    close_distributed,
    derive_seed,
    describe_device,
    determinism,
    device_of,
    init_distributed,
    steps_per_epoch,
    to_device,
    wait_for_all_ranks,
)
from nclab.train.evaluate import evaluate
from nclab.train.hook_state import hook_states, restore_hooks
from nclab.train.hooks import HookContext, TrainHook


class Trainer:
    """One training run in a run directory (see docs/contracts.md).

    Under ``torchrun --nproc_per_node N -m nclab train ...`` it uses DDP: ``train.batch_size`` is the
    global batch, each rank takes every N-th index of it, gradients are averaged, NC statistics are
    summed across ranks and only rank 0 writes the run directory.
    """

    def __init__(
        self, cfg: Config, run_dir: str | Path, *, hooks: list[TrainHook] | None = None, resume: bool = False
    ):
        self.cfg, self.run = cfg, RunDir(run_dir)
        self.dir = self.run.path
        self.device = device_of(cfg.train.device)
        if self.device.type == "cuda" and torch.cuda.device_count() > 1:
            import os

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        self.rank, self.world, self._own_group = init_distributed(self.device)
        # one writer per run directory (nclab.rundir.RunLock), taken before anything is written
        created = not self.dir.exists()
        self._lock = self.run.lock() if self.rank == 0 else None
        if self._lock is not None:
            self.run.remove_stale_temporaries()  # left by a kill during an atomic write
        try:
            self._build(cfg, hooks, resume)
        except BaseException:  # e.g. a misspelt option: release the lock, leave nothing behind
            self.close()
            if created and self.rank == 0:
                (self.dir / ".lock").unlink(missing_ok=True)
                if self.dir.is_dir() and not any(self.dir.iterdir()):
                    self.dir.rmdir()
            raise

    def _build(self, cfg: Config, hooks: list[TrainHook] | None, resume: bool) -> None:
        """Data, modules, loss, sampler, placement, optimizer, hooks; then the checkpoint on resume or
        the run directory's static files."""
        self.data = load_data(cfg.data, cfg.train.seed)
        self.model, self.head = build_modules(cfg, self.data)
        from nclab.losses import create_loss

        self.loss_fn = create_loss(cfg.loss.name, self.data.counts, **dict(cfg.loss.kwargs))
        from nclab.data.samplers import create_sampler

        skw = dict(cfg.sampler.kwargs)
        if cfg.sampler.name == "progressive":
            skw.setdefault("epochs", cfg.train.epochs)
        self.sampler = create_sampler(
            cfg.sampler.name, self.data.train_y, self.data.counts, seed=cfg.train.seed, **skw
        )
        self.steps_per_epoch = steps_per_epoch(len(self.data.train_y), cfg.train.batch_size, self.world)
        self.amp_dtype = amp_dtype(cfg.train.amp, self.device)
        self.channels_last = cfg.train.channels_last == "on" or (
            cfg.train.channels_last == "auto" and self.device.type == "cuda"
        )
        self._place()  # every module and state on the device; then the optimizer and the DDP wrap
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(cfg, s, self.steps_per_epoch)
        )
        self.scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)
        self.hooks = list(hooks or [])
        if cfg.align.strategies:
            from nclab.align import build_hooks

            self.hooks += build_hooks(
                cfg.align,
                self.head,
                len(self.data.counts),
                self.model.num_features,
                self.data.counts,
                device=self.device,
            )
        # the loop's own features, ahead of the others: the loss schedule before any epoch-start hook,
        # the online statistics on the step's loss before extra terms, the nearest-ETF head's means
        builtin: list[TrainHook] = []
        if hasattr(self.loss_fn, "set_epoch"):
            builtin.append(LossSchedule(self.loss_fn))
        if cfg.train.mixup_alpha > 0:
            builtin.append(Mixup(cfg.train.mixup_alpha))
        self.online = None
        if cfg.train.nc_tracking and cfg.train.nc_source == "online":
            k, dim = len(self.data.counts), self.model.num_features
            self.online = OnlineNC(k, dim, self.device, rank=self.rank, world=self.world)
            builtin.append(self.online)
        if hasattr(self.head, "update_means"):
            builtin.append(HeadMeans())
        self.hooks = builtin + self.hooks
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.ctx = HookContext(
            self.model,
            self.head,
            total_steps=cfg.train.epochs * self.steps_per_epoch,
            steps_per_epoch=self.steps_per_epoch,
            epochs=cfg.train.epochs,
            device=self.device,
            world_size=self.world,
            rank=self.rank,
        )
        self.tb = None
        if cfg.train.tensorboard and self.rank == 0:
            from nclab.train.tensorboard import TensorBoardLogger

            self.tb = TensorBoardLogger(self.dir)
        self.t0 = time.time()
        self.elapsed_before = 0.0
        if resume:
            self._load()
        elif self.rank == 0:  # config.yaml (with meta), classes.json; refused if the directory holds a run
            self.run.create(self._config_text(), {"names": self.data.class_names, "counts": self.data.counts})
        else:
            self.run.check_new()

    def _place(self) -> None:
        """Put the modules, the loss and the data on the device, then build the optimizer (on the
        placed parameters) and wrap for DDP. The order matters on a GPU: SyncBatchNorm and
        channels_last change the modules, so both come before the DDP wrap."""
        cfg, dev = self.cfg, self.device
        if cfg.train.sync_bn and self.world > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        if self.channels_last:
            self.model.to(dev, memory_format=torch.channels_last)
        else:
            self.model.to(dev)
        self.head.to(dev)
        self.loss_fn.to(dev)  # LT losses keep their class constants as buffers
        # in-memory image/feature tensors live on the GPU when they fit (no copy per step)
        on_dev = cfg.train.data_on_device == "on" or (
            cfg.train.data_on_device == "auto"
            and dev.type == "cuda"
            and isinstance(self.data.train_x, torch.Tensor)
        )
        self.train_x = self.data.train_x.to(dev) if on_dev else self.data.train_x
        self.train_y = self.data.train_y.to(dev) if on_dev else self.data.train_y
        if self.data.mean is not None:  # preprocess's constants, copied once rather than every step
            self.data = dataclasses.replace(self.data, mean=self.data.mean.to(dev), std=self.data.std.to(dev))
        self._finite = torch.ones((), dtype=torch.bool, device=dev)
        self.opt = build_optimizer(cfg, self.model, self.head)
        self.net: nn.Module = Network(self.model, self.head)  # DDP synchronises both
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # a loss that reads the features and the head's weight directly (dot regression) leaves
            # the logits, hence a head bias, without a gradient: DDP must be told
            unused = bool(getattr(self.loss_fn, "needs_features", False))
            self.net = DistributedDataParallel(self.net, find_unused_parameters=unused)

    @classmethod
    def resume(
        cls, run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), **kwargs: Any
    ) -> Trainer:
        """A Trainer that continues the run in ``run_dir`` exactly where its last checkpoint stopped,
        with the run's own config (``Config.from_run_dir``) and ``overrides`` (e.g. more epochs)."""
        return cls(Config.from_run_dir(run_dir, overrides), run_dir, resume=True, **kwargs)

    # -- run directory ------------------------------------------------------------------------------
    def _config_text(self) -> str:
        """The resolved config and the run's ``meta`` (versions, data checksum, counts, sources)."""
        meta = {
            "nclab": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": describe_device(self.device),
            "world_size": self.world,
            "data_checksum": self.data.checksum,
            "counts": self.data.counts,
            "sources": config_sources(self.cfg),  # the config files composed (nclab.compose)
        }
        return with_meta(to_yaml(self.cfg), meta)

    def _state(self) -> dict[str, Any]:
        """Everything a resume needs. Collective under DDP (every rank calls it): the online statistics
        of a partial epoch are summed over the ranks, so rank 0's checkpoint holds the global ones."""
        return {
            "model": self.model.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "hooks": hook_states(self.hooks),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "elapsed": self.elapsed_before + time.time() - self.t0,
            "torch_rng": torch.get_rng_state(),
        }

    def _load(self) -> None:
        s = self.run.load_checkpoint(("model", "head", "optimizer", "epoch", "step_in_epoch", "torch_rng"))
        try:
            self.model.load_state_dict(s["model"])
            self.head.load_state_dict(s["head"])
            self.opt.load_state_dict(s["optimizer"])
            self.sched.load_state_dict(s["scheduler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise NclabError(
                f"cannot resume {self.dir}: {self.run.checkpoint_path} does not fit the model this config "
                f"builds ({str(err).strip().splitlines()[0][:200]}); resume with the run's own config.yaml"
            ) from None
        if s.get("scaler") and self.scaler.is_enabled():  # AMP-off and CPU runs save an empty state
            self.scaler.load_state_dict(s["scaler"])
        restore_hooks(self.hooks, s, self.dir)  # keyed by hook name: a different set is an error
        torch.set_rng_state(s["torch_rng"])
        self.epoch, self.step_in_epoch, self.global_step = s["epoch"], s["step_in_epoch"], s["global_step"]
        self.elapsed_before = s["elapsed"]
        if self.rank == 0:  # drop evaluations written after this checkpoint (and a torn last line)
            s2_done = self.run.stage2_done()
            self.run.truncate(lambda r: r.get("epoch", 0) <= self.epoch and (s2_done or "stage" not in r))

    def _checkpoint(self) -> None:
        self._check_finite()  # never checkpoint a model that a non-finite loss has already corrupted
        state = self._state()  # on every rank: it may sum the online statistics over the ranks
        if self.rank == 0:
            self.run.save_checkpoint(state)

    def close(self) -> None:
        """Release the run directory's lock and destroy the process group this trainer created
        (idempotent; :meth:`fit` calls it when it returns or fails)."""
        if self._lock is not None:
            self._lock.release()
        if self._own_group:
            close_distributed()
            self._own_group = False

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train to ``train.epochs`` (then stage 2, if configured); returns the run directory."""
        try:
            out = self._fit()
            if self._own_group:
                wait_for_all_ranks()  # rank 0 may still be in stage 2: leave together (not on failure)
            return out
        finally:
            self.close()

    def _fit(self) -> Path:
        cfg = self.cfg
        with determinism(cfg.train.deterministic, self.device):
            for h in self.hooks:
                h.on_train_start(self.ctx)
            while self.epoch < cfg.train.epochs:
                self._train_epoch()
                # -- end of epoch: evaluate, log, checkpoint
                for h in self.hooks:
                    h.on_epoch_end(self.ctx)
                self.epoch += 1
                self.step_in_epoch = 0
                if self.epoch % cfg.train.eval_every == 0 or self.epoch == cfg.train.epochs:
                    nc_period = cfg.train.eval_every * cfg.train.nc_every
                    self._evaluate_and_log(nc=self.epoch % nc_period == 0 or self.epoch == cfg.train.epochs)
                self._checkpoint()
            if cfg.stage2.method != "none" and self.rank == 0 and not self.run.stage2_done():
                self._stage2()
        return self.dir

    def _train_epoch(self) -> None:
        """The remaining steps of epoch ``self.epoch`` (all of them unless resumed mid-epoch)."""
        cfg = self.cfg
        bs = cfg.train.batch_size
        order = self.sampler.indices(self.epoch)  # deterministic in (seed, epoch), drawn on the host
        # one copy per epoch where the data lives on the GPU: the steps then index there (no blocking copy)
        order = to_device(order, self.train_y.device)
        self.ctx.epoch, self.ctx.step_in_epoch = self.epoch, self.step_in_epoch
        for h in self.hooks:
            h.on_epoch_start(self.ctx)
        from tqdm import tqdm

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
        for s, idx, xb in zip(bar, idx_batches, iter_batches(self.train_x, idx_batches, self.device)):
            loss = self._train_step(idx, xb)
            self.step_in_epoch = s + 1
            if self.global_step % cfg.train.log_every == 0:  # the only host reads of a step, every N
                self._check_finite()
                bar.set_postfix(loss=f"{float(loss):.3f}")
            if (  # mid-epoch checkpoint
                cfg.train.ckpt_every_steps
                and self.global_step % cfg.train.ckpt_every_steps == 0
                and self.step_in_epoch < self.steps_per_epoch
            ):
                self._checkpoint()
        self._check_finite()

    def _train_step(self, idx: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        """One optimisation step on the batch ``xb`` (indices ``idx``); returns the detached loss.

        No host synchronisation: the loss's finiteness is accumulated on the device and read by
        :meth:`_check_finite` every ``train.log_every`` steps, before a checkpoint and at epoch end."""
        cfg, d, dev = self.cfg, self.data, self.device
        gen = torch.Generator().manual_seed(derive_seed(cfg.train.seed, self.global_step, 1))
        x = preprocess(to_device(xb, dev), d, augment=cfg.data.augment, generator=gen)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        y = to_device(self.train_y[idx], dev)  # idx is on train_y's device (_train_epoch)
        self.ctx.generator = gen
        for h in self.hooks:  # e.g. mixup
            x, y = h.transform_batch(x, y, self.ctx)
        # -- forward and backward
        with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            feats, logits = self.net(x)
            loss = self._loss(feats, logits, y)
            for h in self.hooks:  # e.g. mixup's second targets
                loss = h.combine_loss(loss, lambda t: self._loss(feats, logits, t), y, self.ctx)
        self.ctx.step, self.ctx.loss = self.global_step, loss.detach()
        for h in self.hooks:
            h.on_batch(feats.detach(), y, self.ctx)
            extra = h.extra_loss(feats, logits, y, self.ctx)
            if extra is not None:
                loss = loss + extra
        self._finite &= torch.isfinite(loss.detach())
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
        return loss.detach()

    def _check_finite(self) -> None:
        """Raise if any loss since the last check was NaN or infinite (one host read)."""
        if not bool(self._finite):
            if self.rank == 0:  # a row that says so: tables show the run as diverged, sweeps skip it
                row = {"epoch": self.epoch + 1, "step": self.global_step, "diverged": True}
                row["diverged_reason"] = "non-finite loss"
                self.run.append(row)
            raise NclabError(
                f"the loss became NaN or infinite in epoch {self.epoch + 1} (before step "
                f"{self.step_in_epoch} of the epoch): lower optim.lr"
            )

    def _loss(self, feats: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if getattr(self.loss_fn, "needs_features", False):  # e.g. dot regression
            return self.loss_fn(feats.float(), y, self.head.weight)
        return self.loss_fn(logits.float(), y)

    def _stage2(self) -> None:
        """Two-stage method on the frozen backbone (nclab.train.two_stage); one extra metrics.jsonl row
        with ``stage`` = the method, evaluated exactly like the training epochs."""
        import nclab.train.two_stage as ts

        s2, d = self.cfg.stage2, self.data
        bs = self.cfg.train.eval_batch_size
        feats = ts.frozen_features(
            self.model, self.train_x, lambda x: preprocess(to_device(x, self.device), d), bs
        ).float()
        y = d.train_y  # host labels: the samplers draw index orders on the host

        def new_head() -> nn.Module:
            from nclab.heads import create_head

            kw = dict(self.cfg.head.kwargs)
            return create_head(self.cfg.head.name, self.model.num_features, len(d.counts), **kw).to(
                feats.device
            )

        def validation() -> tuple[torch.Tensor, torch.Tensor]:
            if d.val_x is not None:  # the run's own held-out split (data.val_fraction)
                vf = ts.frozen_features(
                    self.model, d.val_x, lambda x: preprocess(to_device(x, self.device), d), bs
                ).float()
                return vf, d.val_y
            _, va = ts.validation_split(y, s2.val_fraction, self.cfg.train.seed)  # carved from training
            return feats[va.to(feats.device)], y[va]

        inp = ts.Stage2Input(
            feats,
            y,
            d.counts,
            self.head,
            new_head,
            validation,
            s2.epochs,
            s2.lr,
            s2.batch_size,
            self.cfg.train.seed,
            s2.max_norm,
        )
        head, info = ts.run_stage2(s2.method, inp)
        info = {"stage": s2.method, **info}
        row, geom = evaluate(
            self.model,
            head,
            self.loss_fn,
            d,
            self.device,
            nc=self.cfg.train.nc_tracking,
            bs=bs,
            rcond=self.cfg.train.nc_rcond,
            unit=self.cfg.train.nc_features == "unit",
        )
        out = {"epoch": self.epoch, "step": self.global_step, "lr": None, **info, **row}
        self.run.write_geometry(self.epoch, stage=s2.method, **geom)
        self.run.append(out)
        self.run.mark_stage2_done(s2.method)
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
            train_stats=self.online.stats if self.online else None,
            train_loss_sum=self.online.loss if self.online else 0.0,
            rcond=self.cfg.train.nc_rcond,
            unit=self.cfg.train.nc_features == "unit",
        )
        if self.rank != 0:  # only rank 0 writes
            return
        out = {"epoch": self.epoch, "step": self.global_step, "lr": self.opt.param_groups[0]["lr"], **row}
        self.run.write_geometry(self.epoch, **geom)
        self.run.append(out)
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
