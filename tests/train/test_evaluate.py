"""Evaluation (train/evaluate.py)."""

import pytest
import torch
from torch import nn

from nclab.train.evaluate import _val_accuracy, accuracy_row, class_hits
from tests.train.helpers import train_data


def test_accuracy_row_against_counting_by_hand():
    """Per-class accuracy, the group means over the training counts' many/medium/few classes and the
    overall accuracy, as centralised and federated evaluation report them."""
    counts = [500, 50, 5]  # one class in each of many (> 100), medium, few (< 20)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2])
    pred = torch.tensor([0, 0, 0, 1, 1, 0, 0, 2, 0])
    logits = torch.nn.functional.one_hot(pred, 3).float()
    row = accuracy_row(class_hits(logits, labels, 3), labels, counts)
    per_class = [3 / 4, 1 / 3, 1 / 2]
    assert row["acc/all"] == 5 / 9
    assert row["acc/per_class"] == pytest.approx(per_class, abs=1e-7)
    assert [row["acc/many"], row["acc/medium"], row["acc/few"]] == pytest.approx(per_class, abs=1e-7)
    assert list(row) == ["acc/all", "acc/many", "acc/medium", "acc/few", "acc/per_class"]
    empty = accuracy_row(torch.zeros(2), torch.tensor([0, 0]), [500, 400])  # no medium or few class
    assert empty["acc/per_class"] == [0.0, 0.0] and empty["acc/medium"] is None


def test_val_accuracy_by_hand():
    d = train_data([1, 1])
    d.val_x = torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]])
    d.val_y = torch.tensor([0, 0, 0, 1])
    head = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    # predictions: 0, 0, 1, 1 -> class 0: 2/3 right, class 1: 1/1 right
    out = _val_accuracy(nn.Identity(), head, d, torch.device("cpu"), 2, 2)
    assert out["val/acc"] == pytest.approx(3 / 4)
    assert out["val/balanced_acc"] == pytest.approx((2 / 3 + 1) / 2)


def test_unit_features_measure_nc_of_the_normalised_features_and_rows():
    """train.nc_features=unit (Yaras et al. 2022): NC of h/||h|| and w_k/||w_k||, i.e. exactly the raw
    measurement of a network whose features are normalised, with a head of unit rows; accuracy and the
    losses stay those of the raw features."""
    import torch.nn.functional as F

    from nclab.train.evaluate import evaluate

    torch.manual_seed(0)
    d = train_data([40, 25, 12], dim=5)
    d.train_x = d.train_x * torch.rand(len(d.train_x), 1) * 5 + 0.3  # spread of the feature norms
    d.test_x, d.test_y = torch.randn(30, 5) * 3, torch.arange(30) % 3
    head = nn.Linear(5, 3)
    unit_head = nn.Linear(5, 3)
    with torch.no_grad():
        unit_head.weight.copy_(F.normalize(head.weight, dim=1))
        unit_head.bias.copy_(head.bias)

    class Normalise(nn.Module):
        def forward(self, x):
            return F.normalize(x, dim=1)

    cpu, loss = torch.device("cpu"), nn.CrossEntropyLoss()
    raw, _ = evaluate(nn.Identity(), head, loss, d, cpu, bs=16)
    unit, geom = evaluate(nn.Identity(), head, loss, d, cpu, bs=16, unit=True)
    ref, ref_geom = evaluate(Normalise(), unit_head, loss, d, cpu, bs=16)
    for key in ("acc/all", "acc/per_class", "loss/test", "loss/train"):
        assert unit[key] == raw[key], key
    for key in ("nc/nc1", "nc/nc2_equinorm", "nc/nc3", "nc_test/nc1"):
        assert unit[key] == pytest.approx(ref[key], rel=1e-5), key
    assert abs(unit["nc/nc1"] - raw["nc/nc1"]) > 1e-2  # the normalisation changes what is measured
    for key in ("weights", "means"):
        assert geom[key] == pytest.approx(ref_geom[key], abs=1e-6), key
