"""The backbone registry (models/__init__.py): the feature contract of every registered backbone,
strict options, the input spec, and the MLP."""

import pytest
import torch

from nclab.errors import RegistryError
from nclab.models import create_model, list_models

INPUTS = {
    "cnn_small": (dict(in_channels=1), (2, 1, 28, 28)),
    "mlp": (dict(in_features=12), (2, 12)),
    "resnet32_cifar": ({}, (2, 3, 32, 32)),
    "resnet18": (dict(stem="cifar"), (2, 3, 32, 32)),
    "resnet50": (dict(stem="imagenet"), (2, 3, 64, 64)),
}


@pytest.mark.parametrize("name", list_models())
def test_contract_features_shape_finite_and_gradients(name):
    kw, shape = INPUTS[name]
    torch.manual_seed(0)
    m = create_model(name, **kw)
    x = torch.randn(*shape)
    f = m(x)
    assert f.shape == (shape[0], m.num_features) and torch.isfinite(f).all()
    f.sum().backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_unknown_model_name_suggests_the_close_one():
    with pytest.raises(RegistryError, match="resnet32_cifar"):
        create_model("resnet32")


@pytest.mark.parametrize("name", list_models())
def test_unknown_model_option_names_the_accepted_ones(name):
    with pytest.raises(
        RegistryError, match=f"unknown model option 'widht' for {name}; accepted: .*feature_dim"
    ):
        create_model(name, **INPUTS[name][0], widht=3)


def test_inputs_spec_reaches_only_the_backbones_that_take_it():
    inputs = {"in_channels": 1, "in_features": 12}
    torch.manual_seed(0)
    a = create_model("mlp", inputs=inputs, feature_dim=8)
    torch.manual_seed(0)
    b = create_model("mlp", in_features=12, feature_dim=8)  # same seed, same initialisation
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    cnn = create_model("cnn_small", inputs=inputs)
    assert cnn(torch.randn(2, 1, 28, 28)).shape == (2, cnn.num_features)
    assert (
        create_model("resnet32_cifar", inputs={"in_channels": 1, "in_features": 1024}).body[0].in_channels
        == 1
    )
    # an explicit keyword wins over the spec
    assert create_model("mlp", inputs=inputs, in_features=5)(torch.randn(2, 5)).shape == (2, 64)
    with pytest.raises(RegistryError, match="model mlp: missing a required argument: 'in_features'"):
        create_model("mlp", inputs={"in_channels": 3})
