"""nclab.checkpoint: only tensors and plain containers are saved, writes are atomic, loading never runs
code and names what is wrong with a damaged file (attacks through a run directory:
tests/train/test_trust.py)."""

import os
from collections import OrderedDict

import numpy as np
import pytest
import torch

from nclab import checkpoint as ckpt
from nclab.errors import DataError


@pytest.mark.parametrize(
    "obj",
    [
        {"a": 1, "b": [1.5, "x", None, True], "c": (torch.zeros(2), {"d": torch.Size([2, 3])})},
        OrderedDict(w=torch.ones(1), dtype=torch.float16, dev=torch.device("cpu")),
        [],
        7,
    ],
)
def test_check_safe_accepts_tensors_and_plain_containers(obj):
    ckpt.check_safe(obj)


@pytest.mark.parametrize(
    "obj,where",
    [
        ({"rng": np.random.default_rng(0)}, r"checkpoint\['rng'\] is a numpy"),
        ({"x": [1, np.float64(2.0)]}, r"checkpoint\['x'\]\[1\] is a numpy.float64"),
        ({"s": {1, 2}}, r"checkpoint\['s'\] is a builtins.set"),
        ({(1, 2): object()}, r"checkpoint\[\(1, 2\)\] is a builtins.object"),
        ({1.5j: 0}, r"checkpoint key is a builtins.complex"),
    ],
)
def test_check_safe_names_the_path_to_what_it_refuses(obj, where):
    with pytest.raises(TypeError, match=where):
        ckpt.check_safe(obj)


def test_save_atomic_round_trips_and_leaves_no_temporary(tmp_path):
    state = {"epoch": 3, "rng": torch.get_rng_state(), "hooks": {"A": {"n": 2}}, "lr": [0.1, 0.01]}
    path = tmp_path / "sub" / "last.pt"  # the folder is created
    ckpt.save_atomic(state, path)
    ckpt.save_atomic({**state, "epoch": 4}, path)  # replaces the file in one step
    back = ckpt.load(path, required=("epoch", "rng"))
    assert back["epoch"] == 4 and back["hooks"] == {"A": {"n": 2}} and back["lr"] == [0.1, 0.01]
    assert torch.equal(back["rng"], state["rng"])
    assert sorted(os.listdir(path.parent)) == ["last.pt"]


def test_a_refused_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_atomic({"epoch": 1}, path)
    with pytest.raises(TypeError):
        ckpt.save_atomic({"epoch": 2, "bad": np.zeros(2)}, path)
    assert ckpt.load(path)["epoch"] == 1 and sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_load_names_a_missing_empty_or_foreign_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ckpt.load(tmp_path / "none.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DataError, match="it is empty"):
        ckpt.load(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("not a zip")
    with pytest.raises(DataError, match="not a complete torch zip archive"):
        ckpt.load(tmp_path / "text.pt")
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    with pytest.raises(DataError, match="not a dict"):
        ckpt.load(tmp_path / "tensor.pt")


class _Payload:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_load_never_runs_code_from_the_file(tmp_path):
    touched = tmp_path / "touched"
    torch.save({"x": _Payload(touched)}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="cannot be loaded safely"):
        ckpt.load(tmp_path / "evil.pt")
    assert not touched.exists()


def test_load_refuses_a_missing_key(tmp_path):
    ckpt.save_atomic({"round": 1}, tmp_path / "c.pt")
    with pytest.raises(DataError, match=r"lacks \['params'\]"):
        ckpt.load(tmp_path / "c.pt", required=("round", "params"))
