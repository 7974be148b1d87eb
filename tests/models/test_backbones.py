"""The CNN and ResNet backbones (models/backbones.py): the projection and the narrow mode, the
ResNet-32 size, option errors, and the small CNN's output by hand."""

import pytest
import torch

from nclab.errors import ConfigError
from nclab.models import create_model


def test_feature_dim_projection_and_resnet32_size():
    m = create_model("resnet32_cifar", feature_dim=10)
    assert m.num_features == 10 and m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    base = create_model("resnet32_cifar")
    n = sum(p.numel() for p in base.parameters()) + 64 * 10 + 10
    assert 0.45e6 < n < 0.47e6  # the LDAM-DRW ResNet-32: 0.46M with a 10-class head
    assert create_model("resnet18", stem="imagenet").num_features == 512


def test_stem_and_feature_mode_errors():
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


def test_projection_only_when_feature_dim_differs_from_the_width():
    same = create_model("cnn_small", width=32, feature_dim=32)
    assert same.proj is None and same.num_features == 32
    none = create_model("cnn_small", feature_dim=None)
    assert none.proj is None and none.num_features == 64
    with pytest.raises(ConfigError, match="ResNet"):
        create_model("cnn_small", feature_dim=10, feature_mode="narrow")


def test_features_pool_the_body_then_project():
    from nclab.models.backbones import _Features

    torch.manual_seed(0)
    f = _Features(torch.nn.Identity(), width=3, feature_dim=2)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    f = f.double()
    ref = x.mean(dim=(2, 3)) @ f.proj.weight.T + f.proj.bias  # global average pooling, then the linear map
    torch.testing.assert_close(f(x), ref)
    flat = _Features(torch.nn.Identity(), width=3, feature_dim=None)
    v = torch.randn(2, 3)
    assert torch.equal(flat(v), v)  # (B, width) bodies pass through
