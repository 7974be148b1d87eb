import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nclab.errors import NclabError
from nclab.fed.partition import assign_classes, client_counts, dirichlet_partition, pcdd_partition


def _labels(counts):
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(2, 12),
    clients=st.integers(1, 25),
    cpc=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_pcdd_invariants(k, clients, cpc, seed):
    cpc = min(cpc, k)
    if clients * cpc < k:
        with pytest.raises(NclabError, match="cannot cover"):
            pcdd_partition(_labels([7] * k), clients, cpc, seed=seed)
        return
    counts = list(range(5, 5 + k))
    y = _labels(counts)
    parts = pcdd_partition(y, clients, cpc, seed=seed)
    allidx = torch.cat(parts)
    assert len(allidx) == len(y) and len(torch.unique(allidx)) == len(y)  # disjoint and complete
    held = assign_classes(k, clients, cpc, seed=seed)
    cc = np.array(client_counts(y, parts, k))
    for c in range(k):
        holders = [i for i, h in enumerate(held) if c in h]
        assert holders, "every class is held by at least one client"
        got = cc[holders, c]
        assert got.sum() == counts[c] and got.max() - got.min() <= 1  # split evenly
        assert (np.delete(cc[:, c], holders) == 0).all()
    for i, h in enumerate(held):
        assert len(h) == cpc and set(np.flatnonzero(cc[i])) <= set(h)


def test_pcdd_is_seed_reproducible():
    y = _labels([30] * 10)
    a = pcdd_partition(y, 20, 2, seed=3)
    b = pcdd_partition(y, 20, 2, seed=3)
    c = pcdd_partition(y, 20, 2, seed=4)
    assert all(torch.equal(x, z) for x, z in zip(a, b))
    assert not all(torch.equal(x, z) for x, z in zip(a, c))


def test_dirichlet_partition_disjoint_complete_and_skewed():
    y = _labels([200] * 5)
    parts = dirichlet_partition(y, 10, 0.1, seed=0)
    allidx = torch.cat(parts)
    assert len(torch.unique(allidx)) == len(y) == len(allidx)
    cc = np.array(client_counts(y, parts, 5))
    # small beta: most clients dominated by one class
    frac = cc.max(1) / np.maximum(cc.sum(1), 1)
    assert np.median(frac) > 0.6
    again = dirichlet_partition(y, 10, 0.1, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))


@pytest.mark.parametrize(
    "call",
    [
        lambda: pcdd_partition(torch.tensor([0, 1, 3]), 4, 1, num_classes=4),  # class 2 empty
        lambda: pcdd_partition(torch.tensor([0.0, 1.0]), 2, 1),
        lambda: pcdd_partition(torch.tensor([0, 1]), 2, 3),
        lambda: dirichlet_partition(torch.tensor([0, 1]), 2, 0.0),
    ],
)
def test_bad_input(call):
    with pytest.raises(NclabError):
        call()
