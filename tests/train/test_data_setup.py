"""nclab.train.data_setup: the per-class validation split (model selection)."""

import pytest
import torch

from nclab.errors import ConfigError
from nclab.train import load_config
from nclab.train.data_setup import carve_validation
from tests.train.helpers import SMOKE, train_data


def test_carve_validation_is_per_class_disjoint_and_seeded():
    d = carve_validation(train_data([50, 20, 3, 2]), 0.1, seed=3)
    assert d.counts == [45, 18, 2, 1]  # round(0.1 n), at least one of each class with >= 2 samples
    assert torch.bincount(d.val_y).tolist() == [5, 2, 1, 1]
    rows_tr = {tuple(r) for r in d.train_x.tolist()}
    assert not rows_tr & {tuple(r) for r in d.val_x.tolist()}
    assert len(rows_tr) + len(d.val_y) == 75
    torch.manual_seed(0)
    again = carve_validation(train_data([50, 20, 3, 2]), 0.1, seed=3)
    assert torch.equal(again.val_x, d.val_x)


def test_carve_validation_refuses_to_empty_a_class():
    with pytest.raises(ConfigError, match="val_fraction"):
        carve_validation(train_data([10, 2]), 0.9, seed=0)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_config(SMOKE, ["data.val_fraction=1.0"])
