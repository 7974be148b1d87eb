"""Backbones that return features: a small CNN for 28x28 inputs, ResNet-32 (CIFAR), ResNet-18/50.

- ``resnet32_cifar``: He et al. (CVPR 2016) CIFAR ResNet with 3 stages of 5 basic blocks (16/32/64
  channels), option-A (zero-padding) shortcuts as in the LDAM-DRW code (Cao et al. 2019); 0.46M
  parameters with a 10-class linear head.
- ``resnet18``/``resnet50``: He et al. with a ``stem="cifar"`` (3x3 conv, no max-pool) or
  ``stem="imagenet"`` (7x7 stride-2 conv and max-pool).
- ``cnn_small``: two conv-BN-ReLU-pool blocks and a linear layer, for Fashion-MNIST.

``feature_dim`` adds a final linear projection when it differs from the backbone width
(``feature_mode="project"``), so that d = K is one option away (papers.md section 2).
``feature_mode="narrow"`` (ResNets only) follows Zhu et al. (NeurIPS 2021) instead: the last residual
block's last convolution and its BatchNorm output ``feature_dim`` channels, with a 1x1 convolution +
BatchNorm shortcut, and no projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nclab.errors import ConfigError
from nclab.models.base import register_model


def _check_mode(feature_mode: str, feature_dim: int | None, residual: bool) -> bool:
    if feature_mode not in ("project", "narrow"):
        raise ConfigError(f"feature_mode must be 'project' or 'narrow', got {feature_mode!r}")
    if feature_mode == "narrow":
        if not residual:
            raise ConfigError("feature_mode='narrow' needs a backbone with a last residual block (a ResNet)")
        if not feature_dim:
            raise ConfigError("feature_mode='narrow' needs feature_dim (e.g. the number of classes)")
    return feature_mode == "narrow"


class _Features(nn.Module):
    """body -> global pooling -> optional projection; ``num_features`` is the output width."""

    def __init__(self, body: nn.Module, width: int, feature_dim: int | None, project: bool = True):
        super().__init__()
        self.body = body
        self.proj = (
            nn.Linear(width, feature_dim) if project and feature_dim and feature_dim != width else None
        )
        self.num_features = (feature_dim or width) if project else width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1) if h.ndim == 4 else h
        return self.proj(h) if self.proj is not None else h


@register_model
def cnn_small(
    *,
    in_channels: int = 1,
    width: int = 64,
    feature_dim: int | None = 128,
    feature_mode: str = "project",
):
    """Small CNN for 28x28 inputs: conv(32)-BN-ReLU-pool, conv(64)-BN-ReLU-pool, linear to ``width``."""
    _check_mode(feature_mode, feature_dim, residual=False)
    body = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, width),
        nn.ReLU(inplace=True),
    )
    return _Features(body, width, feature_dim)


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1, option_a: bool = False, out: int | None = None):
        super().__init__()
        out = out or cout  # out != cout: the narrow last block (second conv outputs `out` channels)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.option_a = option_a and out == cout and (stride != 1 or cin != cout)
        self.pad = (cout - cin) // 2
        self.short = None
        if not self.option_a and (stride != 1 or cin != out):
            self.short = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.option_a:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        elif self.short is not None:
            sc = self.short(x)
        else:
            sc = x
        return F.relu(out + sc)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, out: int | None = None):
        super().__init__()
        cout = out or planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.short(x) if self.short is not None else x))


@register_model
def resnet32_cifar(*, in_channels: int = 3, feature_dim: int | None = None, feature_mode: str = "project"):
    """The LDAM-DRW ResNet-32 for 32x32 inputs (64 features)."""
    narrow = _check_mode(feature_mode, feature_dim, residual=True)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
    ]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(5):
            out = feature_dim if (narrow and cout == 64 and i == 4) else None
            layers.append(_BasicBlock(cin, cout, stride if i == 0 else 1, option_a=True, out=out))
            cin = cout
    width = int(feature_dim) if narrow else 64
    return _Features(nn.Sequential(*layers), width, feature_dim, project=not narrow)


def _resnet(block, blocks: list[int], in_channels: int, stem: str, feature_dim, feature_mode):
    narrow = _check_mode(feature_mode, feature_dim, residual=True)
    if stem == "cifar":
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        ]
    elif stem == "imagenet":
        layers = [
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
    else:
        raise ConfigError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    cin = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            out = feature_dim if (narrow and i == 3 and j == n - 1) else None
            layers.append(block(cin, planes, stride, out=out))
            cin = out or planes * block.expansion
    return _Features(nn.Sequential(*layers), cin, feature_dim, project=not narrow)


@register_model
def resnet18(
    *,
    in_channels: int = 3,
    stem: str = "cifar",
    feature_dim: int | None = None,
    feature_mode: str = "project",
):
    """ResNet-18 (512 features) with a CIFAR or ImageNet stem."""
    return _resnet(_BasicBlock, [2, 2, 2, 2], in_channels, stem, feature_dim, feature_mode)


@register_model
def resnet50(
    *,
    in_channels: int = 3,
    stem: str = "imagenet",
    feature_dim: int | None = None,
    feature_mode: str = "project",
):
    """ResNet-50 (2048 features) with a CIFAR or ImageNet stem."""
    return _resnet(_Bottleneck, [3, 4, 6, 3], in_channels, stem, feature_dim, feature_mode)
