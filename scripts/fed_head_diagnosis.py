"""Where a federated model loses generic accuracy: in its backbone or in its head (docs/fed.md).

For each federated run directory (its ``config.yaml`` and ``checkpoints/last.pt``), the aggregated model
of the last round, on the balanced test set:

- ``acc``: its generic accuracy (the classifier it is evaluated with; FedGELA: the plain ETF, phi = 1);
- ``ncm/backbone``: nearest-class-mean accuracy on the backbone's features ``h``, the class means taken
  on a seeded subsample of the training set (what the backbone's features allow a simple classifier);
- ``ncm/head``: the same on the features the classifier rows act on (``gela_authors``: the BatchNorm'd
  projection ``z``; other heads: ``h`` again);
- ``cos``: mean over classes of the cosine between a class's centred mean feature (training subsample)
  and its classifier row (how well the classes sit on their ETF columns);
- ``acc/bn_pooled``: ``acc`` after every BatchNorm's running statistics are recomputed on the pooled
  training data (batches of the run's local batch size drawn from all clients), replacing the server's
  mean of the clients' statistics; ``-`` for a model without BatchNorm.

A head that loses what its backbone has shows ``ncm/head`` well below ``ncm/backbone``.

With ``--per-class``, a table per run follows, one row per class: its training images (``n``), those on
clients that take a local step (``n/trained``: with ``drop_last``, a client with fewer images than a batch
trains nothing), the mean over those images of FedGELA's local scale ``phi_kc = C n_kc / n_k`` of their
client (``phi``: how strongly, on average, a local loss pulls the class onto its ETF column; Fan et al.,
NeurIPS 2023), and the class's test accuracy, nearest-class-mean accuracy on ``h``, centred
mean-to-row cosine, and ``logit/shared``: its logit averaged over the test images of every class (the
mean of the per-class means) less that average over classes, i.e. how much the part of the features all
classes share raises or lowers the class's logit whatever the image.

Usage: python scripts/fed_head_diagnosis.py RUN_DIR [RUN_DIR ...] [--samples N] [--per-class]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nclab import checkpoint
from nclab.errors import NclabError
from nclab.fed.config import gela_options, load_fed_config
from nclab.fed.local import batches, load_shared_state
from nclab.fed.setup import get_setup
from nclab.heads.gela import gela_scales
from nclab.models.network import Network


@torch.no_grad()
def features(net: Network, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, ...]:
    """Backbone features ``h``, classifier features (``head.project(h)`` or ``h``) and logits, eval mode."""
    net.eval()
    dev = next(net.parameters()).device
    hs, zs, outs = [], [], []
    for i in range(0, len(x), batch_size):
        h, out = net(x[i : i + batch_size].to(dev))
        hs.append(h.float().cpu())
        zs.append((net.head.project(h) if hasattr(net.head, "project") else h).float().cpu())
        outs.append(out.float().cpu())
    return torch.cat(hs), torch.cat(zs), torch.cat(outs)


def class_means(f: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The mean feature of each class 0..k-1, ``(k, d)``."""
    return torch.stack([f[y == c].mean(0) for c in range(k)])


def per_class_accuracy(pred: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Accuracy on each class 0..k-1, ``(k,)`` (NaN for a class absent from ``y``)."""
    return torch.stack([(pred[y == c] == c).float().mean() for c in range(k)])


def nearest_mean_predictions(
    train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, k: int
) -> torch.Tensor:
    """The class whose training mean is nearest (Euclidean) to each test feature."""
    return torch.cdist(test_f, class_means(train_f, train_y, k)).argmin(1)


def nearest_mean_accuracy(
    train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor, k: int
) -> float:
    """Accuracy of assigning each test feature to the class whose training mean is nearest (Euclidean)."""
    return float((nearest_mean_predictions(train_f, train_y, test_f, k) == test_y).float().mean())


def centred_mean_cosines(f: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """cos(mu_c - mu_G, w_c) for each class c, with mu_G the mean of the class means, ``(K,)``."""
    means = class_means(f, y, rows.shape[0])
    centred = means - means.mean(0)
    return nn.functional.cosine_similarity(centred, rows.float(), dim=1)


def shared_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each class's logit averaged over the classes' mean logits (each class of ``y`` weighted alike), less
    the mean of that over the classes, ``(K,)``."""
    shared = class_means(logits, y, logits.shape[1]).mean(0)
    return shared - shared.mean()


def class_pull(
    client_counts: list[list[int]],
    trains: list[bool],
    c: float | None = None,
    floor: float = 0.0,
    cap: float | None = None,
    missing: float = 0.0,
) -> tuple[list[int], list[int], list[float | None]]:
    """Per class: training images, images on the clients that take a local step (``trains``, one flag
    per client), and the mean over those images of their client's ``phi_kc = C n_kc / n_k`` (between
    ``floor`` and ``cap``, the run's ``gela_phi_min`` and ``gela_phi_max``, for a held class;
    :func:`nclab.heads.gela.gela_scales`), i.e. ``sum_k n_kc phi_kc / sum_k n_kc``; None where no
    training client holds the class. ``missing`` weighs no image, so it leaves the means unchanged."""
    k = len(client_counts[0])
    total, trained, weighted = [0] * k, [0] * k, [0.0] * k
    for counts, steps in zip(client_counts, trains):
        for j, m in enumerate(counts):
            total[j] += m
        if not steps:
            continue
        for j, (m, phi) in enumerate(zip(counts, gela_scales(counts, c, floor, cap, missing).tolist())):
            trained[j] += m
            weighted[j] += m * phi
    return total, trained, [w / t if t else None for w, t in zip(weighted, trained)]


@torch.no_grad()
def recompute_batchnorm(net: Network, batches: list[torch.Tensor]) -> bool:
    """Replace every BatchNorm's running statistics by their plain average over ``batches`` (train-mode
    forwards, nothing else changes); False when ``net`` has no BatchNorm."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.eval()
    for m in bns:
        m.train()
    dev = next(net.parameters()).device
    for xb in batches:
        net(xb.to(dev))
    net.eval()
    return bool(bns)


def diagnose(run_dir: str | Path, samples: int = 5000) -> dict[str, Any]:
    """The measurements of the module docstring for one run directory; ``per_class`` holds the rows of
    the ``--per-class`` table."""
    run_dir = Path(run_dir)
    cfg = load_fed_config(run_dir / "config.yaml", [])
    setup = get_setup(cfg)
    d, k = setup.data, setup.num_classes
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt", required=("round", "params"))
    net = setup.build_model()
    load_shared_state(net, state["params"])
    gen = torch.Generator().manual_seed(cfg.seed)
    sub = torch.randperm(len(d.train_y), generator=gen)[: min(samples, len(d.train_y))]
    train_h, train_z, _ = features(net, d.train_x[sub])
    test_h, test_z, logits = features(net, d.test_x)
    ty, y = d.train_y[sub], d.test_y
    acc = float((logits.argmax(1) == y).float().mean())
    rows = getattr(net.head, "weight", None)
    cos = None if rows is None else centred_mean_cosines(train_z, ty, rows.detach())
    ncm_h = nearest_mean_predictions(train_h, ty, test_h, k)
    out: dict[str, Any] = {
        "run": str(run_dir),
        "round": int(state["round"]),
        "acc": acc,
        "ncm/backbone": float((ncm_h == y).float().mean()),
        "ncm/head": nearest_mean_accuracy(train_z, ty, test_z, y, k),
        "cos": None if cos is None else float(cos.mean()),
    }
    # a client takes a local step when its epoch has a batch (the runner's own rule, drop_last included)
    trains = [len(batches(torch.arange(sum(c)), cfg.local)) > 0 for c in setup.client_counts]
    n, n_trained, phi = class_pull(setup.client_counts, trains, *gela_options(cfg))
    class_acc = per_class_accuracy(logits.argmax(1), y, k)
    class_ncm = per_class_accuracy(ncm_h, y, k)
    shared = shared_logits(logits, y)
    out["per_class"] = [
        {
            "class": c,
            "n": n[c],
            "n/trained": n_trained[c],
            "phi": phi[c],
            "acc": float(class_acc[c]),
            "ncm/backbone": float(class_ncm[c]),
            "cos": None if cos is None else float(cos[c]),
            "logit/shared": float(shared[c]),
        }
        for c in range(k)
    ]
    pooled = copy.deepcopy(net)
    order = torch.randperm(len(d.train_y), generator=gen)
    bs = cfg.local.batch_size
    chunks = [d.train_x[order[i : i + bs]] for i in range(0, len(order) - bs + 1, bs)]
    has_bn = recompute_batchnorm(pooled, chunks)
    out["acc/bn_pooled"] = (
        float((features(pooled, d.test_x)[2].argmax(1) == y).float().mean()) if has_bn else None
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="federated run directories")
    ap.add_argument("--samples", type=int, default=5000, help="training images for the class means")
    ap.add_argument("--per-class", action="store_true", help="also a table per run, one row per class")
    args = ap.parse_args(argv)
    cols = ["acc", "ncm/backbone", "ncm/head", "cos", "acc/bn_pooled"]
    print(" | ".join(["run", "round", *cols]))
    for run in args.runs:
        try:
            r = diagnose(run, args.samples)
        except NclabError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(" | ".join([r["run"], str(r["round"]), *map(cell, (r[c] for c in cols))]), flush=True)
        if args.per_class:
            class_cols = ["class", "n", "n/trained", "phi", "acc", "ncm/backbone", "cos", "logit/shared"]
            print("  " + " | ".join(class_cols))
            for row in r["per_class"]:
                print("  " + " | ".join(cell(row[c]) for c in class_cols), flush=True)
    return 0


def cell(v: float | int | None) -> str:
    """A table cell: ``-`` for None, an int as is, a float to 4 decimals."""
    return "-" if v is None else str(v) if isinstance(v, int) else f"{v:.4f}"


if __name__ == "__main__":
    sys.exit(main())
