"""nclab.train.tensorboard: ``train.tensorboard=true`` writes event files."""

import pytest

from nclab.cli import main
from tests.train.helpers import SMOKE


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    assert (
        main(
            [
                "train",
                str(SMOKE),
                "train.epochs=1",
                "train.tensorboard=true",
                "--run-dir",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    files = list((tmp_path / "r" / "tb").glob("events.out.tfevents.*"))
    assert files and files[0].stat().st_size > 100


def test_log_writes_the_numeric_keys_only(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nclab.train.tensorboard import TensorBoardLogger

    tb = TensorBoardLogger(tmp_path)
    row = {"epoch": 3, "step": 30, "acc/all": 0.5, "nc/nc1": 2, "ok": True, "acc/per_class": [0.1], "s": "x"}
    assert tb.log(row, step=30) == 2  # acc/all and nc/nc1; not bools, lists, strings, epoch or step
    tb.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["acc/all", "nc/nc1"]
    (ev,) = acc.Scalars("acc/all")
    assert ev.step == 30 and ev.value == 0.5
