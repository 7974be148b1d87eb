"""Client partitions for federated long-tailed learning (seeded, reproducible).

- :func:`pcdd_partition`: partially class-disjoint data (Fan et al., NeurIPS 2023, FedGELA): each client
  holds ``classes_per_client`` classes, every class is held by at least one client, and each class's
  samples are split evenly (up to one sample) among its holders.
- :func:`dirichlet_partition`: label-Dirichlet(beta) split (Hsu et al. 2019): for each class, the
  fractions of its samples that go to each client are drawn from Dir(beta * 1).

Either applies to any label vector, so a long-tailed global profile is obtained by partitioning an
already long-tailed dataset (``nclab.data``). No sample is given to two clients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nclab.errors import NclabError


def _as_labels(labels: torch.Tensor | Sequence[int]) -> np.ndarray:
    arr = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise NclabError(f"labels must be a 1-D integer vector, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size == 0:
        raise NclabError("labels is empty: nothing to partition")
    if arr.min() < 0:
        raise NclabError("labels must be non-negative class indices")
    return arr.astype(np.int64)


def assign_classes(
    num_classes: int, num_clients: int, classes_per_client: int, *, seed: int = 0
) -> list[list[int]]:
    """Which classes each client holds under PCDD.

    Classes are dealt in rounds of a fresh random permutation, one slot per (client, class) pair, so
    every class is held by ``floor`` or ``ceil`` of ``num_clients * classes_per_client / K`` clients and
    (since ``num_clients * classes_per_client >= K``) by at least one. A client never gets a class twice:
    a deal with a repeat is redrawn, and after 1000 redraws (dense cases) one random permutation is
    dealt cyclically instead.

    Returns:
        ``num_clients`` sorted lists of class indices.
    """
    if classes_per_client < 1 or classes_per_client > num_classes:
        raise NclabError(f"classes_per_client must be in [1, {num_classes}], got {classes_per_client}")
    if num_clients * classes_per_client < num_classes:
        raise NclabError(
            f"{num_clients} clients x {classes_per_client} classes cannot cover {num_classes} classes: "
            "raise num_clients or classes_per_client"
        )
    rng = np.random.default_rng(seed)
    for _attempt in range(1000):
        slots: list[int] = []
        while len(slots) < num_clients * classes_per_client:
            slots.extend(rng.permutation(num_classes).tolist())
        slots = slots[: num_clients * classes_per_client]
        held = [slots[i * classes_per_client : (i + 1) * classes_per_client] for i in range(num_clients)]
        if all(len(set(h)) == classes_per_client for h in held):
            return [sorted(h) for h in held]
    # dense cases (classes_per_client close to K) rarely deal without repeats: fall back to dealing
    # one random permutation cyclically, whose windows of classes_per_client <= K entries never repeat
    perm = rng.permutation(num_classes)
    return [
        sorted(int(perm[(i * classes_per_client + j) % num_classes]) for j in range(classes_per_client))
        for i in range(num_clients)
    ]


def pcdd_partition(
    labels: torch.Tensor | Sequence[int],
    num_clients: int,
    classes_per_client: int,
    *,
    num_classes: int | None = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Partially class-disjoint partition (FedGELA's PCDD setting).

    Args:
        labels: ``(N,)`` integer labels.
        num_clients: number of clients.
        classes_per_client: classes each client holds.
        num_classes: K (default ``labels.max() + 1``); every class must have samples.
        seed: seeds the class assignment and the shuffles.

    Returns:
        One int64 tensor of sample indices per client, disjoint, covering every sample.
    """
    y = _as_labels(labels)
    k = int(num_classes if num_classes is not None else y.max() + 1)
    present = np.bincount(y, minlength=k)
    if (present == 0).any():
        raise NclabError(f"classes {np.flatnonzero(present == 0).tolist()} have no samples")
    held = assign_classes(k, num_clients, classes_per_client, seed=seed)
    holders: list[list[int]] = [[] for _ in range(k)]
    for client, classes in enumerate(held):
        for c in classes:
            holders[c].append(client)
    rng = np.random.default_rng(seed + 1)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c in range(k):
        idx = rng.permutation(np.flatnonzero(y == c))
        for client, chunk in zip(holders[c], np.array_split(idx, len(holders[c]))):
            parts[client].append(chunk)
    return [torch.from_numpy(np.sort(np.concatenate(p))) for p in parts]


def dirichlet_partition(
    labels: torch.Tensor | Sequence[int],
    num_clients: int,
    beta: float,
    *,
    num_classes: int | None = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Label-Dirichlet partition: class c's samples split by proportions p_c ~ Dir(beta).

    Args:
        labels: ``(N,)`` integer labels.
        num_clients: number of clients.
        beta: concentration (> 0); small beta gives few classes per client.
        seed: seeds the proportions and the shuffles.

    Returns:
        One int64 tensor of sample indices per client (a client may be empty at tiny beta).
    """
    if not beta > 0:
        raise NclabError(f"beta must be > 0, got {beta}")
    if num_clients < 1:
        raise NclabError(f"num_clients must be >= 1, got {num_clients}")
    y = _as_labels(labels)
    k = int(num_classes if num_classes is not None else y.max() + 1)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c in range(k):
        idx = rng.permutation(np.flatnonzero(y == c))
        p = rng.dirichlet(np.full(num_clients, float(beta)))
        cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
        for client, chunk in enumerate(np.split(idx, cuts)):
            parts[client].append(chunk)
    return [torch.from_numpy(np.sort(np.concatenate(p)).astype(np.int64)) for p in parts]


def client_counts(
    labels: torch.Tensor | Sequence[int], parts: Sequence[torch.Tensor], num_classes: int
) -> list[list[int]]:
    """Per-client class counts ``(num_clients, K)`` as nested lists (what ``clients.json`` stores)."""
    y = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels))
    return [torch.bincount(y[p], minlength=num_classes).tolist() for p in parts]
