"""The per-class validation split (data/split.py): a partition, per-class fractions, seeding."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nclab.data.split import validation_split
from nclab.errors import ConfigError


def test_per_class_sizes_by_hand():
    labels = torch.tensor([2] * 10 + [0] * 5 + [1] * 1 + [3] * 2)
    tr, va = validation_split(labels, 0.2, seed=0)
    # round(0.2 n), at least 1 for a class with >= 2 samples, none from a singleton class
    assert torch.bincount(labels[va], minlength=4).tolist() == [1, 0, 2, 1]
    assert 15 in tr.tolist()  # the singleton stays in training
    assert tr.tolist() == sorted(tr.tolist()) and va.tolist() == sorted(va.tolist())


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 1000),
)
def test_a_seeded_partition_of_every_index(counts, fraction, seed):
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]
    tr, va = validation_split(labels, fraction, seed)
    assert sorted(tr.tolist() + va.tolist()) == list(range(len(labels)))
    got = torch.bincount(labels[va], minlength=len(counts)).tolist()
    assert got == [max(1, round(fraction * n)) if n >= 2 else 0 for n in counts]
    again = validation_split(labels, fraction, seed)
    assert torch.equal(again[0], tr) and torch.equal(again[1], va)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_outside_the_open_interval(fraction):
    with pytest.raises(ConfigError, match=r"validation fraction must be in \(0, 1\)"):
        validation_split(torch.arange(4) % 2, fraction)
