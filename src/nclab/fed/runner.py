"""A federated run on one machine: run directory, per-round evaluation, checkpoints, resume.

Writes the run directory of docs/contracts.md through :class:`nclab.rundir.RunDir` (``config.yaml``,
``classes.json``, ``metrics.jsonl`` with one line per round, ``geometry/<round>.npz``,
``checkpoints/last.pt``) plus ``clients.json``, so ``nclab report`` draws federated runs like centralised
ones (``epoch`` = round); accuracy is centralised evaluation's (:func:`nclab.train.evaluate.accuracy_row`),
plus ``val/acc`` and ``val/balanced_acc`` on the validation split when ``data.val_fraction`` > 0.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from nclab import textfmt
from nclab.errors import ConfigError, DataError, NclabError
from nclab.fed.config import FedConfig, config_sources
from nclab.fed.local import load_shared_state, predict, shared_state
from nclab.fed.setup import get_setup
from nclab.rundir import RunDir, with_meta
from nclab.train.device import describe_device
from nclab.train.evaluate import accuracy_row, class_hits, flatten, head_geometry, val_row

CLIENT_CPUS = 1  # the CPUs Ray reserves for each simulated client, and its torch threads


class FedRun:
    """State of one federated run directory (:class:`nclab.rundir.RunDir`); holds its lock until
    :meth:`close`."""

    def __init__(self, cfg: FedConfig, run_dir: Path, *, resume: bool = False):
        self.cfg = cfg
        self.run = RunDir(run_dir)
        self.dir = self.run.path
        self._lock = self.run.lock()  # one writer, before anything is written
        try:
            self._open(resume)
        except BaseException:
            self.close()
            raise

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Path:
        """Continue the federated run in ``run_dir`` from its last round, with the run's own config (its
        ``config.yaml``) and ``overrides`` (e.g. more rounds); returns the run directory."""
        from nclab.fed.config import load_fed_config

        run_dir = Path(run_dir)
        RunDir(run_dir).config()  # a clear error for a missing or corrupt config.yaml
        try:
            cfg = load_fed_config(run_dir / "config.yaml", list(overrides))
        except ConfigError as err:
            raise ConfigError(f"cannot resume from {run_dir / 'config.yaml'}: {err}") from None
        cfg.run_dir = str(run_dir)
        return run_fed(cfg, run_dir, resume=True)

    def _open(self, resume: bool) -> None:
        self.run.remove_stale_temporaries()  # left by a kill during an atomic write
        self.setup = get_setup(self.cfg)
        self.done_rounds = 0
        self._state: list[np.ndarray] | None = None
        self._t0 = time.time()
        if not resume:
            d = self.setup.data
            text = with_meta(
                OmegaConf.to_yaml(OmegaConf.structured(self.cfg)),
                {"sources": config_sources(self.cfg), "device": describe_device(self.setup.device)},
            )
            classes = {"names": d.class_names, "counts": d.counts}
            self.run.create(text, classes, {"clients.json": {"clients": self._clients()}})
            return
        state = self.run.load_checkpoint(required=("round", "params"))
        self._check_clients()
        self.done_rounds = int(state["round"])
        self._state = [t.numpy() for t in state["params"]]
        self.run.truncate(lambda r: r.get("epoch", 0) <= self.done_rounds)

    def _clients(self) -> list[dict[str, Any]]:
        s = self.setup
        return [
            {"client": i, "num_samples": int(len(p)), "class_counts": [int(c) for c in cc]}
            for i, (p, cc) in enumerate(zip(s.parts, s.client_counts))
        ]

    def _check_clients(self) -> None:
        """On resume: ``clients.json`` must be readable and describe the partition the config rebuilds."""
        path = self.dir / "clients.json"
        try:
            saved = self.run.read_json("clients.json")["clients"]  # DataError: missing or not JSON
            saved = [{k: c[k] for k in ("client", "num_samples", "class_counts")} for c in saved]
        except (KeyError, TypeError) as err:
            raise DataError(f"{path} is unreadable ({type(err).__name__}: {err})") from None
        if saved != self._clients():
            raise ConfigError(
                f"cannot resume: the partition the config builds differs from the one in {path}; resume "
                "with the run's own config.yaml and no overrides of data, partition or seed"
            )

    def close(self) -> None:
        """Release the run directory's lock (idempotent)."""
        self._lock.release()

    def initial_state(self) -> list[np.ndarray]:
        if self._state is None:
            self._state = [t.numpy() for t in shared_state(self.setup.build_model())]
        return self._state

    # -- per round ------------------------------------------------------------------------------
    def on_round(self, rnd: int, params: list[np.ndarray], client_metrics: list[dict[str, Any]]) -> None:
        """Checkpoint the aggregated model; at every ``eval_every``-th round and the last, first evaluate it,
        append to metrics.jsonl and write its geometry."""
        params_t = [torch.from_numpy(np.asarray(p)) for p in params]
        if rnd % self.cfg.eval_every == 0 or rnd >= self.cfg.rounds:
            self._evaluate(rnd, params_t, client_metrics)
        else:
            print(
                f"round {rnd}/{self.cfg.rounds}: trained (evaluated every {self.cfg.eval_every})", flush=True
            )
        self.run.save_checkpoint({"round": rnd, "params": params_t})
        self.done_rounds = rnd

    def _evaluate(self, rnd: int, params_t: list[torch.Tensor], client_metrics: list[dict[str, Any]]) -> None:
        from nclab.metrics import measure

        s, d = self.setup, self.setup.data
        model = s.build_model()
        load_shared_state(model, params_t)
        _, logits = predict(model, d.test_x)
        row: dict[str, Any] = {"epoch": rnd, "round": rnd, "wall_time": time.time() - self._t0}
        row.update(accuracy_row(class_hits(logits, d.test_y, s.num_classes), d.test_y, d.counts))
        if d.val_x is not None:  # model selection (e.g. the learning rate) never looks at the test set
            row.update(val_row(class_hits(predict(model, d.val_x)[1], d.val_y, s.num_classes), d.val_y))
        for key in ("personal_acc", "missing_class_cos", "train_loss"):
            vals = [m[key] for m in client_metrics if key in m and np.isfinite(m[key])]
            row[f"fed/{key}"] = float(np.mean(vals)) if vals else None
        row["fed/clients"] = sorted(int(m["partition_id"]) for m in client_metrics)
        # NC of the aggregated model on (a seeded subsample of) the training set
        n = min(self.cfg.nc_samples, len(d.train_y))
        sub = torch.randperm(len(d.train_y), generator=torch.Generator().manual_seed(self.cfg.seed))[:n]
        feats, _ = predict(model, d.train_x[sub])
        labels, k = d.train_y[sub], s.num_classes
        w = model.head.weight.detach().float().cpu()
        b = model.head.bias.detach().float().cpu() if getattr(model.head, "bias", None) is not None else None
        try:
            nc = measure(
                feats.double(), labels, w.double(), None if b is None else b.double(), counts=d.counts
            )
            flatten("nc", nc, row)
        except NclabError as err:  # e.g. a class absent from the subsample
            logging.getLogger("nclab.fed").warning("NC metrics skipped in round %d: %s", rnd, err)
        means = (
            torch.stack([feats[labels == c].mean(0) for c in range(k)])
            if (torch.bincount(labels, minlength=k) > 0).all()
            else torch.full((k, feats.shape[1]), float("nan"))
        )
        geometry = head_geometry(w, b, d.counts)
        self.run.write_geometry(rnd, means=means.numpy(), global_mean=feats.mean(0).numpy(), **geometry)
        self.run.append(row)
        personal = textfmt.num(row["fed/personal_acc"])  # '-' when no client held a test class
        print(f"round {rnd}/{self.cfg.rounds}: acc {row['acc/all']:.4f} personal {personal}", flush=True)


def run_fed(cfg: FedConfig, run_dir: str | Path, *, resume: bool = False) -> Path:
    """Run (or resume) a federated simulation on this machine with Flower; returns the run dir."""
    from nclab.extras import require

    require("flwr", what="federated runs")  # "federated runs need Flower: pip install 'nclab[fed]'"
    run = FedRun(cfg, Path(run_dir), resume=resume)
    try:
        return _simulate(cfg, run)
    finally:
        run.close()


def _simulate(cfg: FedConfig, run: FedRun) -> Path:
    from flwr.simulation import run_simulation

    from nclab.fed.flower import make_client_app, make_server_app
    from nclab.raywatch import Reaper

    left = cfg.rounds - run.done_rounds
    if left <= 0:
        print(f"{run.dir}: all {cfg.rounds} rounds already done")
        return run.dir
    server = make_server_app(
        cfg, run.initial_state(), run.on_round, rounds=left, round_offset=run.done_rounds
    )
    with Reaper(run.dir):  # the simulation's Ray processes die with this driver
        run_simulation(
            server_app=server,
            client_app=make_client_app(cfg, threads=CLIENT_CPUS),
            num_supernodes=cfg.clients_per_round,
            backend_config={
                "client_resources": {"num_cpus": CLIENT_CPUS, "num_gpus": float(cfg.client_gpus)},
                # a private Ray instance: never attach to another run's (or a dead) cluster
                "init_args": {"address": "local"},
            },
        )
    if run.done_rounds < cfg.rounds:
        raise NclabError(
            f"the simulation stopped after round {run.done_rounds} of {cfg.rounds}; see the log above"
        )
    return run.dir
