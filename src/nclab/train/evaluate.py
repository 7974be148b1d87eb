"""Evaluation: accuracy (all / many / medium / few / per class), loss, NC metrics of train and test
features (train: one streaming FeatureStats pass, no stored copy), head diagnostics."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nclab.data.lazy import chunks, iter_batches
from nclab.metrics import FeatureStats, SecondPass, nc_metrics, split_groups
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
    for i, xb in zip(range(0, len(x), bs), iter_batches(x, chunks(len(x), bs))):
        yield i, model(preprocess(xb.to(device), data))


def _all_reduce_stats(stats: FeatureStats, loss_sum: float) -> float:
    """Sum the statistics (and a scalar) over DDP ranks: every rank then holds the global ones."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return loss_sum
    for t in (stats.counts, stats.sums, stats.sq_norms, stats.second):
        dist.all_reduce(t)
    buf = torch.tensor([loss_sum], dtype=torch.float64)
    dist.all_reduce(buf)
    return float(buf)


@torch.no_grad()
def _val_accuracy(model, head, data: TrainData, device, bs: int, k: int) -> dict[str, float]:
    """Accuracy on the validation split: overall and class-balanced (mean over classes present), the
    quantity model selection maximises."""
    hits = torch.zeros(k)
    for i, f in _features(model, data.val_x, data, device, bs):
        y = data.val_y[i : i + bs]
        hit = head(f).argmax(1).cpu() == y
        hits += torch.bincount(y[hit], minlength=k).float()
    tot = torch.bincount(data.val_y, minlength=k).float()
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
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns (the flat metrics row, geometry arrays for ``geometry/<epoch>.npz``).

    Under DDP each rank streams its shard ``rank::world`` of the training set into a FeatureStats and
    the statistics are summed across ranks (so NC metrics equal the single-process ones); the test set
    is evaluated on every rank."""
    model.eval()
    head.eval()
    k = len(data.counts)
    row: dict[str, Any] = {}
    w = head.weight.detach().float().cpu()
    b = head.bias.detach().float().cpu() if getattr(head, "bias", None) is not None else None
    # test: accuracy, loss, and a FeatureStats + SecondPass over stored test features
    feats, correct_all, loss_sum = [], 0, 0.0
    per_correct = torch.zeros(k)
    for i, f in _features(model, data.test_x, data, device, bs):
        y = data.test_y[i : i + bs].to(device)
        logits = head(f)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        pred = logits.argmax(1)
        hit = (pred == y).cpu()
        correct_all += int(hit.sum())
        per_correct += torch.bincount(y.cpu()[hit], minlength=k).float()
        feats.append(f.float().cpu())
    n_test = len(data.test_y)
    per_total = torch.bincount(data.test_y, minlength=k).float().clamp_min(1)
    per_acc = (per_correct / per_total).tolist()
    row["loss/test"] = loss_sum / n_test
    row["acc/all"] = correct_all / n_test
    for g, members in split_groups(data.counts).items():
        row[f"acc/{g}"] = float(sum(per_acc[c] for c in members) / len(members)) if members else None
    row["acc/per_class"] = per_acc
    if data.val_x is not None and len(data.val_y):
        row.update(_val_accuracy(model, head, data, device, bs, k))
    geometry: dict[str, Any] = {
        "weights": w.numpy(),
        "bias": (b if b is not None else torch.zeros(k)).numpy(),
        "counts": torch.tensor(data.counts).numpy(),
    }
    if nc:
        import warnings

        if train_stats is not None:  # online: gathered from the epoch's training batches
            stats = FeatureStats(k, w.shape[1])
            stats.load_state_dict(train_stats.state_dict())  # a copy on the CPU
            tloss = train_loss_sum
        else:  # train: one streaming pass (no stored copy of the training features)
            stats = FeatureStats(k, w.shape[1])
            tloss = 0.0
            shard_x, shard_y = data.train_x[rank::world], data.train_y[rank::world]
            for i, f in _features(model, shard_x, data, device, bs):
                y = shard_y[i : i + bs]
                stats.update(f.float().cpu(), y)
                if getattr(loss_fn, "needs_features", False):
                    tloss += float(loss_fn(f, y.to(device), head.weight)) * len(y)
                else:
                    tloss += float(loss_fn(head(f), y.to(device))) * len(y)
        tloss = _all_reduce_stats(stats, tloss)
        row["loss/train"] = tloss / len(data.train_y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                flatten("nc", nc_metrics(stats, w, b, counts=data.counts, allow_missing=True), row)
            except ValueError as err:
                row["nc/error"] = str(err)
            test_f = torch.cat(feats)
            tstats = FeatureStats(k, w.shape[1])
            tstats.update(test_f, data.test_y)
            try:
                second = SecondPass(tstats, w, b, allow_missing=True)
                second.update(test_f, data.test_y)
                flatten(
                    "nc_test",
                    nc_metrics(tstats, w, b, counts=data.counts, second=second, allow_missing=True),
                    row,
                )
            except ValueError as err:
                row["nc_test/error"] = str(err)
        geometry["means"] = stats.means().float().numpy()
        geometry["global_mean"] = (stats.sums.sum(0) / max(stats.num_samples, 1)).float().numpy()
    diag = getattr(head, "diagnostics", None)
    if diag is not None:
        flatten("head", diag(), row)
    model.train()
    head.train()
    return row, geometry
