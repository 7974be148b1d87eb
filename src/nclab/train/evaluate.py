"""Evaluation: accuracy (all / many / medium / few / per class), loss, NC metrics of train and test
features (train: one streaming FeatureStats pass, no stored copy), head diagnostics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nclab.data.lazy import chunks, iter_batches
from nclab.metrics import FeatureStats, measure, nc_metrics, split_groups
from nclab.train.data_setup import TrainData, preprocess


def flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    """Flatten nested dicts into ``prefix/key`` entries (lists kept as lists)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten(f"{prefix}/{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


@torch.no_grad()
def _features(model, x, data: TrainData, device: torch.device, bs: int):
    from nclab.train.device import to_device

    for i, xb in zip(range(0, len(x), bs), iter_batches(x, chunks(len(x), bs), device)):
        yield i, model(preprocess(to_device(xb, device), data))


def all_reduce_stats(stats: FeatureStats, loss_sum: torch.Tensor) -> None:
    """Sum the statistics and a scalar tensor over the DDP ranks, in place, on their device (NCCL
    reduces CUDA tensors only): every rank then holds the global ones. A collective: every rank must
    call it."""
    import torch.distributed as dist

    for t in (stats.counts, stats.sums, stats.sq_norms, stats.second, loss_sum):
        dist.all_reduce(t)


def head_geometry(w: torch.Tensor, b: torch.Tensor | None, counts: list[int]) -> dict[str, Any]:
    """The classifier part of ``geometry/<epoch>.npz`` (host arrays): ``weights`` (K, d), ``bias`` (K,;
    zeros without one) and the training ``counts``; the evaluation adds ``means`` and ``global_mean``."""
    bias = b.detach().cpu() if b is not None else torch.zeros(len(counts))
    return {"weights": w.detach().cpu().numpy(), "bias": bias.numpy(), "counts": np.asarray(counts)}


def class_hits(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Correct predictions per class (K,), on the device without a host read."""
    hit = (logits.argmax(1) == y).to(torch.float64)
    return torch.zeros(k, dtype=torch.float64, device=y.device).index_add_(0, y, hit)


def _class_hits_total(y: torch.Tensor, k: int) -> torch.Tensor:
    """Samples per class (K,) float32 (a fixed-shape ``index_add_``, like the hit counts)."""
    return (
        torch.zeros(k, dtype=torch.float64, device=y.device)
        .index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        .float()
    )


def accuracy_row(hits: torch.Tensor, labels: torch.Tensor, counts: list[int]) -> dict[str, Any]:
    """``acc/all``, ``acc/<group>`` (the mean per-class accuracy of the many/medium/few classes of the
    training ``counts``) and ``acc/per_class`` from the correct predictions per class ``hits`` (K,) on
    ``labels``: the accuracy of centralised and federated evaluation alike."""
    hits = hits.cpu().float()  # integer counts: exact in float32, as the accuracies are computed
    per_acc = (hits / _class_hits_total(labels, len(counts)).clamp_min(1)).tolist()
    row: dict[str, Any] = {"acc/all": int(hits.sum()) / len(labels)}
    for g, members in split_groups(counts).items():
        row[f"acc/{g}"] = float(sum(per_acc[c] for c in members) / len(members)) if members else None
    row["acc/per_class"] = per_acc
    return row


@torch.no_grad()
def _val_accuracy(model, head, data: TrainData, device, bs: int, k: int) -> dict[str, float]:
    """Accuracy on the validation split: overall and class-balanced (mean over classes present), the
    quantity model selection maximises."""
    hits = torch.zeros(k, dtype=torch.float64, device=device)
    for i, f in _features(model, data.val_x, data, device, bs):
        y = data.val_y[i : i + bs].to(device)
        hits += class_hits(head(f), y, k)
    return val_row(hits, data.val_y)


def val_row(hits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``val/acc`` (overall) and ``val/balanced_acc`` (mean over the classes present) from the correct
    predictions per class on the validation split: what model selection maximises (centralised and
    federated runs)."""
    hits = hits.cpu().float()  # integer counts: exact in float32, as the accuracies are computed
    tot = _class_hits_total(labels, len(hits))
    present = tot > 0
    return {
        "val/acc": float(hits.sum() / tot.sum()),
        "val/balanced_acc": float((hits[present] / tot[present]).mean()),
    }


@torch.no_grad()
def evaluate(
    model,
    head,
    loss_fn,
    data: TrainData,
    device: torch.device,
    *,
    nc: bool = True,
    bs: int = 1024,
    rank: int = 0,
    world: int = 1,
    train_stats: FeatureStats | None = None,
    train_loss_sum: float = 0.0,
    rcond: float | None = None,
    unit: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns (the flat metrics row, geometry arrays for ``geometry/<epoch>.npz``).

    ``unit`` (``train.nc_features=unit``) measures NC, and writes the geometry, of the L2-normalised
    features h/||h|| and classifier rows w_k/||w_k||: the quantities a cosine head's loss sees (Yaras et
    al., NeurIPS 2022: features and classifier on the unit sphere). Accuracy and losses are unchanged.

    Under DDP each rank streams its shard ``rank::world`` of the training set into a FeatureStats and
    the statistics are summed across ranks (so NC metrics equal the single-process ones); the test set
    is evaluated on every rank."""
    model.eval()
    head.eval()
    k = len(data.counts)
    row: dict[str, Any] = {}
    w = head.weight.detach().float()
    b = head.bias.detach().float() if getattr(head, "bias", None) is not None else None
    # test: accuracy, loss, and a FeatureStats + SecondPass over the test features, kept on the device
    feats = []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    per_correct = torch.zeros(k, dtype=torch.float64, device=device)
    for i, f in _features(model, data.test_x, data, device, bs):
        y = data.test_y[i : i + bs].to(device)
        logits = head(f)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        per_correct += class_hits(logits, y, k)
        feats.append(f.float())
    row["loss/test"] = float(loss_sum) / len(data.test_y)
    row.update(accuracy_row(per_correct, data.test_y, data.counts))
    if data.val_x is not None and len(data.val_y):
        row.update(_val_accuracy(model, head, data, device, bs, k))
    if unit:
        w = F.normalize(w, dim=1)
    geometry = head_geometry(w, b, data.counts)
    if nc:
        import warnings

        stats = FeatureStats(k, w.shape[1], device=device)
        if train_stats is not None:  # online: gathered from the epoch's training batches
            stats.merge(train_stats)  # a copy: the reduction below must not touch the running sums
            tloss = torch.as_tensor(train_loss_sum, dtype=torch.float64).to(device).clone()
        else:  # train: one streaming pass (no stored copy of the training features)
            tloss = torch.zeros((), dtype=torch.float64, device=device)
            shard_x, shard_y = data.train_x[rank::world], data.train_y[rank::world]
            for i, f in _features(model, shard_x, data, device, bs):
                y = shard_y[i : i + bs].to(device)
                stats.update(F.normalize(f.float(), dim=1) if unit else f.float(), y, validate=False)
                if getattr(loss_fn, "needs_features", False):
                    tloss += loss_fn(f, y, head.weight).double() * len(y)
                else:
                    tloss += loss_fn(head(f), y).double() * len(y)
        if world > 1:  # every rank evaluates, so every rank takes part in the reduction
            all_reduce_stats(stats, tloss)
        row["loss/train"] = float(tloss) / len(data.train_y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = nc_metrics(stats, w, b, counts=data.counts, allow_missing=True, rcond=rcond)
                flatten("nc", res, row)
            except ValueError as err:
                row["nc/error"] = str(err)
            test_f = F.normalize(torch.cat(feats), dim=1) if unit else torch.cat(feats)
            test_y = data.test_y.to(device)
            try:  # the stored test features: the two-pass path (docs/metrics.md), NC4 included
                res = measure(
                    test_f, test_y, w, b, counts=data.counts, num_classes=k, allow_missing=True, rcond=rcond
                )
                res.pop("path", None)
                flatten("nc_test", res, row)
            except ValueError as err:
                row["nc_test/error"] = str(err)
        geometry["means"] = stats.means().float().cpu().numpy()
        geometry["global_mean"] = (stats.sums.sum(0) / max(stats.num_samples, 1)).float().cpu().numpy()
    diag = getattr(head, "diagnostics", None)
    if diag is not None:
        flatten("head", diag(), row)
    model.train()
    head.train()
    return row, geometry
