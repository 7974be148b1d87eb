"""The shared dataset type and the LDAM-DRW selection rule (data/base.py)."""

import hashlib

import numpy as np
import pytest
import torch

from nclab.data import LTDataset, lt_select
from nclab.errors import NclabError
from tests.data.reference import ldam_reference


def test_lt_select_reproduces_ldam_rule():
    targets = np.random.default_rng(1).integers(0, 5, size=500)
    counts = [40, 20, 10, 5, 2]
    np.testing.assert_array_equal(lt_select(targets, counts, 0), ldam_reference(targets, counts, 0))
    np.testing.assert_array_equal(lt_select(targets, counts, 7), ldam_reference(targets, counts, 7))


def test_lt_select_refuses_a_profile_larger_than_a_class():
    with pytest.raises(NclabError, match="class 1 has 2 samples, the profile asks for 3"):
        lt_select(np.array([0, 0, 0, 1, 1]), [3, 3], 0)
    assert lt_select(np.array([0, 1]), [], 0).shape == (0,)


def test_dataset_sizes_and_the_selection_hash():
    idx = torch.tensor([4, 0, 7], dtype=torch.int64)
    d = LTDataset(
        images=torch.zeros(3, 2, 2, dtype=torch.uint8),
        labels=torch.tensor([0, 1, 1]),
        indices=idx,
        counts=[1, 2],
        class_names=["a", "b"],
    )
    assert len(d) == 3 and d.num_classes == 2
    raw = b"".join(int(i).to_bytes(8, "little", signed=True) for i in (4, 0, 7))
    assert d.selection_sha256 == hashlib.sha256(raw).hexdigest()
