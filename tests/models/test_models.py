import pytest
import torch

from nclab.errors import ConfigError, RegistryError
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


def test_feature_dim_projection_and_resnet32_size():
    m = create_model("resnet32_cifar", feature_dim=10)
    assert m.num_features == 10 and m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    base = create_model("resnet32_cifar")
    n = sum(p.numel() for p in base.parameters()) + 64 * 10 + 10
    assert 0.45e6 < n < 0.47e6  # the LDAM-DRW ResNet-32: 0.46M with a 10-class head
    assert create_model("resnet18", stem="imagenet").num_features == 512


def test_model_errors():
    with pytest.raises(RegistryError, match="resnet32_cifar"):
        create_model("resnet32")
    with pytest.raises(ConfigError, match="stem"):
        create_model("resnet18", stem="tiny")
    with pytest.raises(ConfigError, match="feature_mode"):
        create_model("cnn_small", feature_mode="narrow")


@pytest.mark.parametrize(
    "name,kw,shape",
    [
        ("resnet18", dict(stem="cifar"), (2, 3, 32, 32)),
        ("resnet32_cifar", {}, (2, 3, 32, 32)),
        ("resnet50", dict(stem="imagenet"), (2, 3, 64, 64)),
    ],
)
def test_narrow_mode_outputs_k_channels_without_projection(name, kw, shape):
    m = create_model(name, feature_dim=10, feature_mode="narrow", **kw)
    assert m.num_features == 10 and m.proj is None and m(torch.randn(*shape)).shape == (2, 10)
    last = list(m.body.children())[-1]
    assert (
        last.short is not None
        and isinstance(last.short[0], torch.nn.Conv2d)
        and last.short[0].kernel_size == (1, 1)
    )
    base = create_model(name, **kw)
    assert sum(p.numel() for p in m.parameters()) < sum(p.numel() for p in base.parameters())
    with pytest.raises(ConfigError, match="feature_dim"):
        create_model(name, feature_mode="narrow", **kw)


@pytest.mark.parametrize("name", list_models())
def test_unknown_model_option_names_the_accepted_ones(name):
    with pytest.raises(RegistryError, match=f"unknown model option 'widht' for {name}; accepted: .*feature_dim"):
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
    assert create_model("resnet32_cifar", inputs={"in_channels": 1, "in_features": 1024}).body[0].in_channels == 1
    # an explicit keyword wins over the spec
    assert create_model("mlp", inputs=inputs, in_features=5)(torch.randn(2, 5)).shape == (2, 64)
    with pytest.raises(RegistryError, match="model mlp: missing a required argument: 'in_features'"):
        create_model("mlp", inputs={"in_channels": 3})
