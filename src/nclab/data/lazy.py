"""Image sets decoded from files on demand (ImageNet-LT), and one way to iterate batches of any image set.

A :class:`LazyImages` stands where the in-memory datasets hold a uint8 tensor: indexing it with a slice or
an index tensor gives another ``LazyImages`` (a view, nothing decoded), ``len`` and ``shape`` work, and
:func:`iter_batches` turns a list of index batches into uint8 tensors: for a tensor by indexing, for a
``LazyImages`` by a DataLoader whose workers decode the files with Pillow (``num_workers`` of the set).
The training loop, evaluation and the two-stage methods go through :func:`iter_batches` only, so
streaming and in-memory data follow the same code path and the same deterministic batch order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class LazyImages:
    """A view of ``dataset`` (items ``(uint8 CHW image, label)``) restricted to ``indices``."""

    def __init__(
        self,
        dataset,
        indices: torch.Tensor | None = None,
        *,
        num_workers: int = 0,
        item_shape: tuple[int, int, int] | None = None,
    ):
        self.dataset = dataset
        self.indices = torch.arange(len(dataset)) if indices is None else indices.long()
        self.num_workers = int(num_workers)
        if item_shape is None:  # decode one image, once per set (views inherit it)
            c, h, w = dataset[0][0].shape if len(dataset) else (3, 0, 0)
            item_shape = (int(c), int(h), int(w))
        self.item_shape = item_shape

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    def __getitem__(self, key) -> LazyImages:
        if isinstance(key, int):
            raise TypeError("index a LazyImages with a slice or an index tensor; decode with iter_batches")
        return LazyImages(
            self.dataset, self.indices[key], num_workers=self.num_workers, item_shape=self.item_shape
        )

    def load(self) -> torch.Tensor:
        """Decode every image of the view in this process (small views only)."""
        return torch.stack([self.dataset[int(i)][0] for i in self.indices])


class _Images(torch.utils.data.Dataset):
    def __init__(self, view: LazyImages):
        self.view = view

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.view.dataset[int(self.view.indices[i])][0]


class _Batches:
    """A batch sampler whose batches are replaced before each pass, so that one DataLoader (and its
    persistent workers) serves every epoch."""

    def __init__(self) -> None:
        self.lists: list[list[int]] = []

    def __iter__(self):
        return iter(self.lists)

    def __len__(self) -> int:
        return len(self.lists)


def iter_batches(
    x: torch.Tensor | LazyImages,
    batches: Sequence[torch.Tensor | Sequence[int]],
    device: torch.device | str | None = None,
) -> Iterator[torch.Tensor]:
    """Yield ``x[b]`` for each index batch ``b`` in order (uint8 or float tensors).

    A tensor already on ``device`` is indexed there. For a ``LazyImages``, one DataLoader per view is
    kept with persistent workers (no worker start-up per pass) and, when ``device`` is CUDA, pinned
    batches for non-blocking copies."""
    if isinstance(x, torch.Tensor):
        for b in batches:
            yield x[b.to(x.device) if isinstance(b, torch.Tensor) else b]
        return
    pin = torch.device(device).type == "cuda" and torch.cuda.is_available() if device is not None else False
    key = ("_loader", pin)
    cached = x.__dict__.get(key)
    if cached is None:
        sampler = _Batches()
        loader = torch.utils.data.DataLoader(
            _Images(x),
            batch_sampler=sampler,
            num_workers=x.num_workers,
            collate_fn=torch.stack,
            persistent_workers=x.num_workers > 0,
            pin_memory=pin,
        )
        cached = x.__dict__[key] = (sampler, loader)
    sampler, loader = cached
    sampler.lists = [torch.as_tensor(b, dtype=torch.long).tolist() for b in batches]
    yield from loader


def chunks(n: int, size: int) -> list[torch.Tensor]:
    """Contiguous index batches 0..n-1 of at most ``size``."""
    return [torch.arange(i, min(i + size, n)) for i in range(0, n, size)]


__all__ = ["LazyImages", "chunks", "iter_batches"]
