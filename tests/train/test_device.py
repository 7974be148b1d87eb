"""nclab.train.device: the device choice, host-to-device copies, the determinism switch and the steps of
an epoch (the AMP dtypes and the DDP tail rule are also checked in tests/train/test_contract.py)."""

import math

import pytest
import torch

from nclab.train import load_config
from nclab.train.device import (
    close_distributed,
    describe_device,
    determinism,
    device_of,
    init_distributed,
    steps_per_epoch,
    to_device,
    wait_for_all_ranks,
)
from tests.train.helpers import SMOKE


def test_device_of_auto_and_explicit():
    auto = device_of(load_config(SMOKE, ["train.device=auto"]).train.device)
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert device_of(load_config(SMOKE, ["train.device=cpu"]).train.device) == torch.device("cpu")


def test_describe_device_names_the_gpu(monkeypatch):
    """What a run's config meta and its sweep record say it ran on."""
    assert describe_device(torch.device("cpu")) == "cpu"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H200")
    assert describe_device(torch.device("cuda", 0)) == "cuda (NVIDIA H200)"

    def no_runtime(d=None):
        raise AssertionError("Torch not compiled with CUDA enabled")

    monkeypatch.setattr(torch.cuda, "get_device_name", no_runtime)
    assert describe_device(torch.device("cuda")) == "cuda"


@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 64, 65, 66, 67, 100])
@pytest.mark.parametrize("bs", [4, 8, 32])  # a global batch holds at least one sample per rank
@pytest.mark.parametrize("world", [1, 2, 4])
def test_steps_per_epoch_against_slicing_the_batches(n, bs, world):
    """The loop's batches, sliced as it slices them: every rank's share of every counted step is non-empty
    and no sample is lost except a last batch smaller than the ranks (never the only batch)."""
    steps = steps_per_epoch(n, bs, world)
    batches = [list(range(n))[s * bs : (s + 1) * bs] for s in range(math.ceil(n / bs))]
    kept = batches[:steps]
    dropped = [i for b in batches[steps:] for i in b]
    assert all(len(b[r::world]) > 0 for b in kept for r in range(world)) or steps == 1
    assert len(dropped) < world and (not dropped or world > 1)


def test_to_device_returns_the_same_tensor_on_its_device():
    t = torch.arange(4)
    assert to_device(t, torch.device("cpu")) is t
    m = torch.device("meta")
    out = to_device(t, m)
    assert out.device.type == "meta" and out.shape == t.shape


def test_determinism_switches_on_and_restores():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    with determinism(True, torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before
    bench = torch.backends.cudnn.benchmark
    with determinism(False, torch.device("cpu")):  # off on the CPU: nothing changes
        assert torch.are_deterministic_algorithms_enabled() == before[0]
        assert torch.backends.cudnn.benchmark == bench


def test_determinism_restores_after_an_error():
    before = torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError, match="boom"), determinism(True, torch.device("cpu")):
        raise RuntimeError("boom")
    assert torch.are_deterministic_algorithms_enabled() == before


def test_init_distributed_without_torchrun_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed(torch.device("cpu")) == (0, 1, False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed(torch.device("cpu")) == (0, 1, False)


def test_a_process_group_the_user_made_is_theirs_and_close_destroys_one(monkeypatch):
    """Under torchrun's environment with a group already made (by the user's script), init_distributed
    reuses it and reports that it did not create it, so the trainer leaves it alone; close_distributed
    destroys the default group, and does nothing without one."""
    import socket

    import torch.distributed as dist

    with socket.socket() as s:  # a free loopback port for the store
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert init_distributed(torch.device("cpu")) == (0, 1, False)  # the group's own rank and size
        assert dist.is_initialized()
        wait_for_all_ranks()  # one rank: nothing to wait for
    finally:
        close_distributed()
    assert not dist.is_initialized()
    close_distributed()  # nothing to destroy: no error
    wait_for_all_ranks()  # no group: no error (the two-rank wait runs in tests/train/test_ddp.py)
