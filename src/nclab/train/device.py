"""Where and how a run executes: the device, the DDP process group, the AMP dtype, host-to-device
copies, the determinism switch and the steps of an epoch (docs/train.md, "On a GPU")."""

from __future__ import annotations

import math

import numpy as np
import torch


def device_of(device: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu`` or ``cuda``: train.device and a federated
    run's device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    """Where a run computes, as its records name it: ``cpu``, or ``cuda (NAME)`` with the GPU's name
    (``cuda`` alone where no name can be read, e.g. under a fake-tensor test on a CPU build)."""
    if device.type != "cuda":
        return device.type
    try:
        return f"cuda ({torch.cuda.get_device_name(device)})"
    except (AssertionError, RuntimeError):  # no CUDA runtime to ask
        return "cuda"


def derive_seed(*parts: int) -> int:
    """A seed derived from integers (the run's seed, a step or round, a client) by numpy's
    SeedSequence: independent streams for every combination, the same on every machine."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Steps of an epoch of ``n`` samples in global batches of ``batch_size``. Under DDP a last batch
    with fewer samples than ranks is dropped: a rank with an empty batch would stall the others."""
    steps = math.ceil(n / batch_size)
    tail = n - (steps - 1) * batch_size
    return steps - 1 if world > 1 and tail < world and steps > 1 else steps


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp``: float16 (with a GradScaler) for ``on`` and, on CUDA,
    ``auto``; bfloat16 (no scaler needed) for ``bf16`` on any device; None otherwise."""
    if amp == "bf16":
        return torch.bfloat16
    if amp in ("on", "auto") and device.type == "cuda":
        return torch.float16
    return None  # off, or on/auto on the CPU (float16 autocast is a CUDA feature; use bf16 there)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host batch to ``device``: from pinned memory without blocking on CUDA."""
    if t.device.type == device.type and device.index in (None, t.device.index):
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        if torch.cuda.is_available():  # (not on a CPU build faking "cuda" tensors: tests/fake_cuda.py)
            t = t.pin_memory()
        return t.to(device, non_blocking=True)  # a blocking copy would wait for the stream's work
    return t.to(device)


class determinism:
    """``train.deterministic``: deterministic algorithms (and cuBLAS's workspace setting) for the
    duration of training, restored afterwards; otherwise cuDNN autotuning on CUDA."""

    def __init__(self, on: bool, device: torch.device):
        self.on, self.device = on, device

    def __enter__(self):
        import os

        self.saved = (
            torch.are_deterministic_algorithms_enabled(),
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark,
        )
        if self.on:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        return self

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = self.saved[1:]
        return False


def init_distributed(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world, created) from torchrun's environment; initialises the process group when world > 1
    and none exists (``created``: this call made it, so its caller destroys it with
    :func:`close_distributed`; a group the user made stays theirs)."""
    import os

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), created


def wait_for_all_ranks() -> None:
    """Block until every rank of the default gloo group gets here, with no practical time limit (rank 0
    may train stage 2 alone for long), so that the ranks leave together: a rank that tears its gloo
    group down while rank 0 still works can abort ("terminate called without an active exception").
    A no-op without a group, with one rank, or on NCCL (whose watchdog would time a long wait out)."""
    import datetime

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(days=7))


def close_distributed() -> None:
    """Destroy the default process group, if any. A rank that exits with its group alive can abort in
    the backend's teardown ("terminate called without an active exception") while another rank still
    works, e.g. rank 0 alone in stage 2."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
