"""The loss registry (losses/__init__.py): cross-entropy against numpy, the contract of every
registered loss, strict options and names."""

import numpy as np
import pytest
import torch

from nclab.errors import RegistryError
from nclab.losses import create_loss, list_losses
from tests.losses.reference import COUNTS, Y, Z, ce, lsm


def _run(name, **kw):
    return float(create_loss(name, COUNTS, **kw)(torch.tensor(Z), torch.tensor(Y)))


def test_ce_and_label_smoothing():
    assert _run("ce") == pytest.approx(ce(Z, Y), rel=1e-6)
    eps = 0.1
    lp = lsm(Z)
    ref = -((1 - eps) * lp[np.arange(7), Y] + eps * lp.mean(1)).mean()
    assert _run("ce", label_smoothing=eps) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("name", list_losses())
def test_registry_contract_finite_and_gradients(name):
    logits = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    loss = create_loss(name, COUNTS)
    if getattr(loss, "needs_features", False):
        w = torch.randn(4, 3)
        h = torch.randn(6, 3, requires_grad=True)
        out = loss(h, y, w)
        out.backward()
        assert torch.isfinite(out) and h.grad is not None
    else:
        out = loss(logits, y)
        out.backward()
        assert torch.isfinite(out) and logits.grad is not None and out.ndim == 0


def test_unknown_loss_option_names_the_accepted_ones():
    msg = r"unknown loss option 'gama' for focal; accepted: gamma\. Did you mean 'gamma'\?"
    with pytest.raises(RegistryError, match=msg):
        create_loss("focal", COUNTS, gama=2.0)
    with pytest.raises(RegistryError, match="'tau' for balanced_softmax; accepted: none"):
        create_loss("balanced_softmax", COUNTS, tau=1.0)


def test_unknown_loss_name_suggests_the_close_one():
    with pytest.raises(RegistryError, match="ldam"):
        create_loss("ldamm", COUNTS)
