"""Class groups by training count (metrics/groups.py): the thresholds' boundaries, inputs, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nclab.errors import NclabError
from nclab.metrics import split_groups


def test_boundaries_by_hand():
    # many: n > 100; medium: 20 <= n <= 100; few: n < 20
    got = split_groups([101, 100, 20, 19, 0, 500])
    assert got == {"many": [0, 5], "medium": [1, 2], "few": [3, 4]}
    assert split_groups(torch.tensor([101, 100, 20, 19, 0, 500])) == got
    assert split_groups([50, 10, 5], many=10, few=5) == {"many": [0], "medium": [1, 2], "few": []}
    assert split_groups([7, 7], many=7, few=7) == {"many": [], "medium": [0, 1], "few": []}


def test_few_above_many_is_refused():
    with pytest.raises(NclabError, match="few <= many, got few=30, many=10"):
        split_groups([5], many=10, few=30)


@settings(max_examples=50, deadline=None)
@given(
    counts=st.lists(st.integers(0, 1000), max_size=20),
    few=st.integers(0, 500),
    extra=st.integers(0, 500),
)
def test_the_groups_partition_the_classes_in_order(counts, few, extra):
    got = split_groups(counts, many=few + extra, few=few)
    assert sorted(got["many"] + got["medium"] + got["few"]) == list(range(len(counts)))
    assert all(g == sorted(g) for g in got.values())
    big = [counts[i] for i in got["many"]]
    small = [counts[i] for i in got["few"]]
    assert all(n > few + extra for n in big) and all(n < few for n in small)
