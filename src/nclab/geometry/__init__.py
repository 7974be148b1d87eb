"""Pure tensor geometry of neural collapse: simplex ETF, nearest ETF, SELI (no state, no I/O)."""

from nclab.geometry.etf import centering_matrix, helmert_basis, simplex_etf
from nclab.geometry.nearest import etf_classifier, nearest_etf, polar_factor
from nclab.geometry.seli import SELIGeometry, sel_matrix, seli_distance, seli_geometry

__all__ = [
    "SELIGeometry",
    "centering_matrix",
    "etf_classifier",
    "helmert_basis",
    "nearest_etf",
    "polar_factor",
    "sel_matrix",
    "seli_distance",
    "seli_geometry",
    "simplex_etf",
]
