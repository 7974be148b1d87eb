"""Space alignment (SpA-Proj, SpA-SLERP, SpA-Reg) as plug-ins for any long-tailed training run."""

from nclab.align.functional import project_gradient, reg_loss, slerp_toward
from nclab.align.hooks import SpAProj, SpAReg, SpASlerp, TrackerHook, build_hooks
from nclab.align.tracker import EMAClassMeans

__all__ = [
    "EMAClassMeans",
    "SpAProj",
    "SpAReg",
    "SpASlerp",
    "TrackerHook",
    "build_hooks",
    "project_gradient",
    "reg_loss",
    "slerp_toward",
]
