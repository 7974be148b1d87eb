"""Each long-tailed loss (losses/longtail.py) against its paper's formula computed independently in
numpy float64."""

import numpy as np
import pytest
import torch

from nclab.errors import ConfigError
from nclab.losses import class_balanced_weights, create_loss, posthoc_logit_adjust
from tests.losses.reference import COUNTS, Y, Z, cb_weights, ce, lsm, rng


def _run(name, **kw):
    return float(create_loss(name, COUNTS, **kw)(torch.tensor(Z), torch.tensor(Y)))


def test_focal():
    p = np.exp(lsm(Z))[np.arange(7), Y]
    assert _run("focal", gamma=2.0) == pytest.approx(np.mean(-((1 - p) ** 2) * np.log(p)), rel=1e-6)
    assert _run("focal", gamma=0.0) == pytest.approx(ce(Z, Y), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_gradient_is_finite_where_p_rounds_to_one(gamma):
    """A confident row (p = 1 in float32) adds nothing to the loss or the gradient; before, gamma < 1
    gave NaN there (gamma q^(gamma - 1) at q = 0 times 0). The other row's gradient against float64 autograd
    of the formula (1 - p)^gamma (-log p), with p from a float64 softmax."""
    z = torch.tensor([[200.0, 0.0, 0.0], [0.3, -0.2, 0.1]], requires_grad=True)
    y = torch.tensor([0, 2])
    loss = create_loss("focal", [5, 3, 2], gamma=gamma)(z, y)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    assert torch.equal(z.grad[0], torch.zeros(3))
    z64 = z.detach()[1].double().requires_grad_(True)
    p = torch.softmax(z64, 0)[2]
    ref = ((1 - p) ** gamma * -torch.log(p)) / 2  # the mean over the two rows; the first row adds 0
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    np.testing.assert_allclose(z.grad[1].numpy(), z64.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_class_balanced():
    w = cb_weights(COUNTS, 0.99)
    np.testing.assert_allclose(class_balanced_weights(COUNTS, 0.99).numpy(), w, rtol=1e-6)
    assert _run("cb", beta=0.99) == pytest.approx(ce(Z, Y, w), rel=1e-6)
    p = np.exp(lsm(Z))[np.arange(7), Y]
    fl = -((1 - p) ** 1.5) * np.log(p)
    assert _run("cb", beta=0.99, base="focal", gamma=1.5) == pytest.approx(
        (w[Y] * fl).sum() / w[Y].sum(), rel=1e-6
    )


def test_ldam_margins_scale_and_drw():
    n = np.array(COUNTS, float)
    m = n**-0.25
    m = m * 0.5 / m.max()
    zz = Z.copy()
    zz[np.arange(7), Y] -= m[Y]
    loss = create_loss("ldam", COUNTS, max_margin=0.5, scale=30.0, drw_epoch=3)
    np.testing.assert_allclose(loss.margins.numpy(), m, rtol=1e-6)
    assert float(loss(torch.tensor(Z), torch.tensor(Y))) == pytest.approx(ce(30 * zz, Y), rel=1e-5)
    loss.set_epoch(2)
    assert not loss.reweighting
    loss.set_epoch(3)
    assert loss.reweighting
    assert float(loss(torch.tensor(Z), torch.tensor(Y))) == pytest.approx(
        ce(30 * zz, Y, cb_weights(COUNTS, 0.9999)), rel=1e-5
    )


def test_logit_adjusted_and_balanced_softmax():
    n = np.array(COUNTS, float)
    assert _run("la", tau=1.5) == pytest.approx(ce(Z + 1.5 * np.log(n / n.sum()), Y), rel=1e-6)
    assert _run("balanced_softmax") == pytest.approx(ce(Z + np.log(n), Y), rel=1e-6)
    adj = posthoc_logit_adjust(torch.tensor(Z), COUNTS, 1.0).numpy()
    np.testing.assert_allclose(adj, Z - np.log(n / n.sum()), rtol=1e-6)


def test_dot_regression():
    h = rng.normal(size=(7, 5))
    w = rng.normal(size=(4, 5))
    loss = create_loss("dr", COUNTS, normalize=False)
    got = float(loss(torch.tensor(h), torch.tensor(Y), torch.tensor(w)))
    wy = w[Y]
    hn = np.linalg.norm(h, axis=1)
    ref = np.mean(0.5 * ((wy * h).sum(1) - np.linalg.norm(wy, axis=1) * hn) ** 2 / hn)
    assert got == pytest.approx(ref, rel=1e-6)
    hn1 = h / np.linalg.norm(h, axis=1, keepdims=True)
    ref1 = np.mean(0.5 * ((wy * hn1).sum(1) - np.linalg.norm(wy, axis=1)) ** 2)
    got1 = float(create_loss("dr", COUNTS)(torch.tensor(h), torch.tensor(Y), torch.tensor(w)))
    assert got1 == pytest.approx(ref1, rel=1e-6)
    # zero when h is aligned with its classifier row
    aligned = torch.tensor(w[Y] * 2.0)
    assert float(loss(aligned, torch.tensor(Y), torch.tensor(w))) == pytest.approx(0.0, abs=1e-12)


def test_loss_errors():
    with pytest.raises(ConfigError):
        create_loss("focal", [10, 0])
    with pytest.raises(ConfigError):
        create_loss("cb", COUNTS, beta=1.0)
    with pytest.raises(ConfigError, match="remove loss.kwargs.gamma or set loss.kwargs.base=focal"):
        create_loss("cb", COUNTS, gamma=2.0)  # softmax CB has no gamma: never silently ignored
