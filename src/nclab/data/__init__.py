"""Long-tailed data: count profiles, datasets read from standard on-disk formats, synthetic data."""

from nclab.data import profiles
from nclab.data.base import LTDataset, lt_select
from nclab.data.cifar import cifar_lt, load_cifar
from nclab.data.fashion_mnist import fashion_mnist_lt, load_fashion_mnist
from nclab.data.synthetic import gaussian_mixture

__all__ = [
    "LTDataset",
    "cifar_lt",
    "fashion_mnist_lt",
    "gaussian_mixture",
    "load_cifar",
    "load_fashion_mnist",
    "lt_select",
    "profiles",
]
