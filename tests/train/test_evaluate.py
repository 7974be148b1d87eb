"""Evaluation (train/evaluate.py)."""

import pytest
import torch

from nclab.train.evaluate import accuracy_row, class_hits


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
