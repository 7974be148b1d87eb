"""The EMA class-mean tracker (align/tracker.py): the EMA by hand, absent classes, centring, state."""

import torch

from nclab.align import EMAClassMeans


def test_tracker_ema_absent_classes_and_centring():
    tr = EMAClassMeans(3, 2, momentum=0.9)
    tr.update(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([0, 0]))
    torch.testing.assert_close(tr.means[0], torch.tensor([2.0, 0.0]))
    assert tr.seen.tolist() == [True, False, False]
    tr.update(torch.tensor([[0.0, 4.0], [12.0, 0.0]]), torch.tensor([1, 0]))
    torch.testing.assert_close(tr.means[0], torch.tensor([0.9 * 2 + 0.1 * 12, 0.0]))
    torch.testing.assert_close(tr.means[1], torch.tensor([0.0, 4.0]))
    assert torch.equal(tr.means[2], torch.zeros(2))
    t = tr.targets()
    c = tr.means[:2] - tr.means[:2].mean(0)
    torch.testing.assert_close(t[:2], torch.nn.functional.normalize(c, dim=1))
    assert torch.equal(t[2], torch.zeros(2))
    s = tr.state_dict()
    tr2 = EMAClassMeans(3, 2)
    tr2.load_state_dict(s)
    assert torch.equal(tr2.means, tr.means)


def test_uncentred_targets_are_the_unit_means_and_to_keeps_the_state():
    tr = EMAClassMeans(2, 2, momentum=0.5, centered=False)
    tr.update(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.tensor([0, 1]))
    torch.testing.assert_close(tr.targets(), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    tr.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))  # class 1 absent: unchanged
    torch.testing.assert_close(tr.means, torch.tensor([[2.0, 2.0], [0.0, 2.0]]))
    moved = tr.to("cpu")
    assert moved is tr and tr.seen.tolist() == [True, True]
