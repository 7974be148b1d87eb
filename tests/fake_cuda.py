"""Fake "cuda" tensors on a CPU build of PyTorch, for the device-placement class of bugs.

PyTorch's fake-tensor mode creates tensors on any device without allocating memory and raises the
same cross-device errors a GPU would (``Expected all tensors to be on the same device``). On a CPU
build three things need help, and :func:`fake_cuda` provides them:

- moving a real CPU tensor (a module's parameters, a batch) to "cuda": ``Tensor.to``/``.cuda()``
  /``.copy_`` across devices are answered with an empty fake tensor of the same shape on the target;
- host reads (``.item()``, ``bool(t)``, ``float(t)``, ``.tolist()``), which need values a fake tensor
  does not have: answered with zeros and *counted* (``FakeCuda.syncs``: the host synchronisations a
  GPU would make), so a test can assert that a training step makes none; blocking host-to-device
  copies (``.to("cuda")`` without ``non_blocking=True``, which PyTorch ends with a stream
  synchronisation) are counted too, as ``h2d``; non-blocking ones are not synchronisations but are
  counted apart (``FakeCuda.copies["h2d"]``), for what a step copies at all;
- autograd on fake CUDA tensors aborts a CPU build (the autograd engine asks for a CUDA device guard),
  so the forward pass runs under ``no_grad``, ``backward`` is a no-op and every optimizer step first
  gives each parameter without a gradient a zero gradient of its shape and device: the optimizer, the
  gradient edits and the weight edits then run on "cuda" too.

Index orders drawn on the host (samplers), validation splits and the losses' class constants are
computed with real tensors
(:func:`unset_fake_temporarily`), as they would be on a GPU machine, and ``Module._apply`` replaces
parameters instead of swapping them (fake parameters refuse ``swap_tensors``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.overrides import TorchFunctionMode

_READS = {
    torch.Tensor.item: "item",
    torch.Tensor.__bool__: "bool",
    torch.Tensor.__float__: "float",
    torch.Tensor.__int__: "int",
    torch.Tensor.__index__: "index",
    torch.Tensor.tolist: "tolist",
}


def _target(args, kwargs) -> tuple[torch.device | None, torch.dtype | None]:
    dev, dtype = kwargs.get("device"), kwargs.get("dtype")
    for a in args[1:]:
        if isinstance(a, (str, torch.device)):
            dev = a
        elif isinstance(a, torch.dtype):
            dtype = a
        elif isinstance(a, torch.Tensor):
            dev, dtype = a.device, a.dtype
    return (torch.device(dev) if dev is not None else None), dtype


def _np_dtype(dtype: torch.dtype):
    import numpy as np

    return {torch.bool: np.bool_, torch.int64: np.int64, torch.int32: np.int32, torch.uint8: np.uint8}.get(
        dtype, np.float64 if dtype == torch.float64 else np.float32
    )


def _zeros_like_list(t: torch.Tensor):
    if t.ndim == 0:
        return 0 if not t.is_floating_point() else 0.0
    return [_zeros_like_list(t[0]) for _ in range(t.shape[0])] if t.shape[0] else []


class FakeCuda(TorchFunctionMode):
    """The torch-function half of :func:`fake_cuda` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs: Counter[str] = Counter()
        self.copies: Counter[str] = Counter()  # non-blocking host-to-device copies
        self.counting = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _READS and not isinstance(args[0], FakeTensor):  # a real tensor (host work)
            return func(*args, **kwargs)
        if func in _READS:
            if self.counting and args[0].device.type == "cuda":  # a read of a host tensor is free
                self.syncs[_READS[func]] += 1
            t = args[0]
            if func is torch.Tensor.tolist:
                return _zeros_like_list(t)
            if func is torch.Tensor.__bool__:
                return True
            if func in (torch.Tensor.__int__, torch.Tensor.__index__):
                return 0
            return 0.0 if (func is torch.Tensor.__float__ or t.is_floating_point()) else 0
        if func is torch.Tensor.numpy:  # of a host tensor (a device tensor must go through .cpu())
            import numpy as np

            return np.zeros(tuple(args[0].shape), dtype=_np_dtype(args[0].dtype))
        if func is torch.Tensor.backward:
            return None
        if func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu):
            t = args[0]
            if func is torch.Tensor.cuda:
                dev, dtype = torch.device("cuda"), None
            elif func is torch.Tensor.cpu:
                dev, dtype = torch.device("cpu"), None
            else:
                dev, dtype = _target(args, kwargs)
            if dev is not None and dev.type != t.device.type:
                if dev.type == "cpu" and self.counting:
                    self.syncs["cpu"] += 1
                blocking = not kwargs.get("non_blocking", any(a is True for a in args[1:]))
                if dev.type == "cuda" and blocking and self.counting:  # memcpy_and_sync: waits on the stream
                    self.syncs["h2d"] += 1
                elif dev.type == "cuda" and self.counting:
                    self.copies["h2d"] += 1
                return torch.empty_strided(t.shape, t.stride(), dtype=dtype or t.dtype, device=dev)
            if t.device.type == "cuda":  # same device: the dtype (and memory format) may change
                mf = kwargs.get("memory_format", torch.preserve_format)
                if (dtype is None or dtype == t.dtype) and mf is torch.preserve_format:
                    return t
                return _aten._to_copy.default(t, dtype=dtype or t.dtype, memory_format=mf)
        if func is torch.Tensor.pin_memory:
            return args[0]
        if func is torch.Tensor.contiguous and args[0].device.type == "cuda":
            mf = args[1] if len(args) > 1 else kwargs.get("memory_format", torch.contiguous_format)
            return _aten.clone.default(args[0], memory_format=mf)
        if func is torch.Tensor.__getitem__ and args[0].device.type == "cuda":
            return _getitem(args[0], args[1])
        if func is torch.Tensor.__setitem__ and args[0].device.type == "cuda":
            return _setitem(*args)
        return func(*args, **kwargs)


_aten = torch.ops.aten


def _expand(t: torch.Tensor, key) -> tuple:
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        used = sum(1 for k in key if k is not None and k is not Ellipsis)
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (t.ndim - used) + key[i + 1 :]
    return key


def _getitem(t: torch.Tensor, key) -> torch.Tensor:
    """``t[key]`` through ATen ops (the Python indexing binding asks for a CUDA device guard, which a
    CPU build does not have; the ATen ops themselves run on fake tensors)."""
    out, dim, adv = t, 0, {}
    for k in _expand(t, key):
        if k is None:
            out, dim = out.unsqueeze(dim), dim + 1
        elif isinstance(k, int):
            out = _aten.select.int(out, dim, k)
        elif isinstance(k, slice):
            start = 0 if k.start is None else k.start
            stop = 2**62 if k.stop is None else k.stop
            out, dim = _aten.slice.Tensor(out, dim, start, stop, k.step or 1), dim + 1
        else:
            adv[dim], dim = torch.as_tensor(k, device=t.device), dim + 1
    if adv:
        out = _aten.index.Tensor(out, [adv.get(i) for i in range(max(adv) + 1)])
    return out


def _setitem(t: torch.Tensor, key, value) -> None:
    keys = _expand(t, key)
    value = value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=t.dtype, device=t.device)
    if all(isinstance(k, torch.Tensor) for k in keys):
        _aten.index_put_(t, list(keys), value)
    else:
        _aten.copy_(_getitem(t, key), value.expand_as(_getitem(t, key)))


def _apply(self, fn, recurse=True):
    """``Module._apply`` without ``swap_tensors`` (which fake tensors refuse): each converted
    parameter becomes a new Parameter, each buffer is replaced."""
    if recurse:
        for m in self.children():
            m._apply(fn)
    for k, p in self._parameters.items():
        if p is not None:
            with torch.no_grad():
                new = fn(p)
            if new is not p:
                self._parameters[k] = torch.nn.Parameter(new, requires_grad=p.requires_grad)
    for k, b in self._buffers.items():
        if b is not None:
            self._buffers[k] = fn(b)
    return self


_real_copy = torch.Tensor.copy_


def _copy_(self, src, non_blocking=False):
    """``copy_`` across devices is a no-op on fake tensors; on "cuda" through ATen (the Python binding
    asks for a CUDA device guard; batch norm's running statistics are updated this way)."""
    if isinstance(src, torch.Tensor) and self.device.type != src.device.type:
        return self
    if self.device.type == "cuda":
        return _aten.copy_.default(self, src if isinstance(src, torch.Tensor) else torch.tensor(src))
    return _real_copy(self, src, non_blocking)


def _grads_then(step):
    def wrapped(self, *a, **k):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        return step(self, *a, **k)

    return wrapped


@contextlib.contextmanager
def fake_cuda(monkeypatch) -> Iterator[FakeCuda]:
    """Fake-tensor mode with "cuda" moves, counted host reads and gradient-free training steps."""
    from nclab.data import samplers

    real_indices = samplers.Sampler.indices

    def indices(self, epoch):
        with unset_fake_temporarily():
            return real_indices(self, epoch)

    real_init = samplers.Sampler.__init__

    def init(self, *args, **kwargs):
        with unset_fake_temporarily():
            real_init(self, *args, **kwargs)

    from nclab.train import two_stage

    real_split = two_stage.validation_split

    def split(*args, **kwargs):
        with unset_fake_temporarily():
            return real_split(*args, **kwargs)

    monkeypatch.setattr(two_stage, "validation_split", split)
    import nclab.losses

    real_loss = nclab.losses.create_loss

    def create_loss(*args, **kwargs):  # class constants are computed on the host, then moved
        with unset_fake_temporarily():
            return real_loss(*args, **kwargs)

    monkeypatch.setattr(nclab.losses, "create_loss", create_loss)
    monkeypatch.setattr(samplers.Sampler, "indices", indices)
    monkeypatch.setattr(samplers.Sampler, "__init__", init)
    monkeypatch.setattr(torch.nn.Module, "_apply", _apply)
    monkeypatch.setattr(torch.Tensor, "copy_", _copy_)
    for cls in (torch.optim.SGD, torch.optim.AdamW):
        monkeypatch.setattr(cls, "step", _grads_then(cls.step))
    mode = FakeCuda()
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True), mode:
        yield mode
