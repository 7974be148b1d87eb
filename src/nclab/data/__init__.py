"""Long-tailed data: count profiles, datasets read from standard on-disk formats, synthetic data."""

from nclab.data import profiles
from nclab.data.synthetic import gaussian_mixture

__all__ = ["profiles", "gaussian_mixture"]
