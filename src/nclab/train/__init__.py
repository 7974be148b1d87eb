"""Training engine: config schema, loop, evaluation, NC tracking, checkpoints and exact resume."""

from nclab.train.config import Config, load_config
from nclab.train.hooks import HookContext, TrainHook
from nclab.train.loop import Trainer

__all__ = ["Config", "HookContext", "TrainHook", "Trainer", "load_config"]
