"""Shared by the tests of nclab.train: the smoke config, a run's metrics rows, a tiny TrainData."""

import json
from pathlib import Path

import torch

from nclab.train.data_setup import TrainData

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "recipes" / "synthetic.yaml"


def rows(run_dir) -> list[dict]:
    """The evaluation rows of a run directory's metrics.jsonl."""
    return [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def train_data(n_per_class, dim=3) -> TrainData:
    """Random features, ``n_per_class[c]`` of class c, no test split."""
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    x = torch.randn(len(y), dim)
    return TrainData(x, y, x[:0], y[:0], list(n_per_class), ["a"] * len(n_per_class), None, None, "", 1, dim)
