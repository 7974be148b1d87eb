"""Optional TensorBoard logging of every evaluation (``train.tensorboard: true``).

Needs the ``tensorboard`` extra (``pip install 'nclab[tensorboard]'``); the run directory's ``tb/`` folder then
holds one scalar per numeric key of ``metrics.jsonl`` (lists such as per-class values are skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TensorBoardLogger:
    def __init__(self, run_dir: str | Path):
        from nclab.extras import require

        require("tensorboard", what="train.tensorboard=true")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def log(self, row: dict[str, Any], step: int) -> int:
        """Write the numeric entries of ``row``; returns how many were written."""
        n = 0
        for key, value in row.items():
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and key not in ("epoch", "step")
            ):
                self.writer.add_scalar(key, value, step)
                n += 1
        self.writer.flush()
        return n

    def close(self) -> None:
        self.writer.close()
