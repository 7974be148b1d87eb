"""The synthetic Gaussian mixture (data/synthetic.py): counts, centres, noise level, seeding."""

import pytest
import torch

from nclab.data import gaussian_mixture
from nclab.errors import NclabError


def test_counts_and_labels_in_class_order():
    x, y = gaussian_mixture([5, 3, 1], 4, seed=2)
    assert x.shape == (9, 4) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == [0] * 5 + [1] * 3 + [2]
    x64, _ = gaussian_mixture([5, 3, 1], 4, seed=2, dtype=torch.float64)
    torch.testing.assert_close(x64.float(), x)
    again, _ = gaussian_mixture([5, 3, 1], 4, seed=2)
    assert torch.equal(again, x) and not torch.equal(gaussian_mixture([5, 3, 1], 4, seed=3)[0], x)


def test_noise_free_samples_lie_on_unit_centres_times_the_separation():
    x, y = gaussian_mixture([3, 2], 6, separation=2.5, noise=0.0, seed=0, dtype=torch.float64)
    torch.testing.assert_close(x.norm(dim=1), torch.full((5,), 2.5, dtype=torch.float64))
    assert torch.equal(x[0], x[2]) and torch.equal(x[3], x[4]) and not torch.equal(x[0], x[3])


def test_class_means_and_spread_match_the_model():
    # N(separation c_k, noise^2 I): the within-class variance per coordinate is noise^2
    x, y = gaussian_mixture([4000, 4000], 3, separation=3.0, noise=0.5, seed=1, dtype=torch.float64)
    centred = x - torch.stack([x[y == c].mean(0) for c in range(2)])[y]
    assert float(centred.var(dim=0).mean()) == pytest.approx(0.25, rel=0.05)
    assert float(x[y == 0].mean(0).norm()) == pytest.approx(3.0, rel=0.02)


def test_bad_counts():
    with pytest.raises(NclabError):
        gaussian_mixture([3, -1], 2)
