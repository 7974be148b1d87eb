"""Images decoded on demand (data/lazy.py): views, shapes, batch iteration in order, chunks."""

import pytest
import torch

from nclab.data.lazy import LazyImages, chunks, iter_batches


class _Decoded(torch.utils.data.Dataset):
    """Item i: a (1, 2, 3) uint8 image filled with i, and label i % 3; counts its decodes."""

    def __init__(self, n):
        self.n, self.decoded = n, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.decoded += 1
        return torch.full((1, 2, 3), i, dtype=torch.uint8), i % 3


def _values(batch):
    return batch[:, 0, 0, 0].tolist()


def test_views_are_lazy_and_keep_the_item_shape():
    ds = _Decoded(10)
    full = LazyImages(ds)
    assert ds.decoded == 1  # one decode to learn the item shape
    assert len(full) == 10 and full.shape == (10, 1, 2, 3)
    view = full[2:8][torch.tensor([5, 0, 3])]
    assert ds.decoded == 1 and view.shape == (3, 1, 2, 3)  # views decode nothing
    assert view.indices.tolist() == [7, 2, 5]
    assert _values(view.load()) == [7, 2, 5]
    with pytest.raises(TypeError, match="slice or an index tensor"):
        full[0]


def test_iter_batches_gives_the_same_batches_for_a_tensor_and_a_lazy_set():
    ds = _Decoded(7)
    images = torch.stack([ds[i][0] for i in range(7)])
    lazy = LazyImages(ds)
    batches = [torch.tensor([6, 0]), [3, 1, 2], torch.tensor([5])]
    from_tensor = [_values(b) for b in iter_batches(images, batches)]
    from_lazy = [_values(b) for b in iter_batches(lazy, batches)]
    assert from_tensor == from_lazy == [[6, 0], [3, 1, 2], [5]]
    # a second pass over other batches reuses the view's loader
    loader = lazy.__dict__[("_loader", False)][1]
    assert [_values(b) for b in iter_batches(lazy, chunks(7, 4))] == [[0, 1, 2, 3], [4, 5, 6]]
    assert lazy.__dict__[("_loader", False)][1] is loader


@pytest.mark.parametrize("n,size", [(0, 3), (5, 5), (7, 3), (2, 10)])
def test_chunks_cover_the_range_in_order(n, size):
    got = chunks(n, size)
    assert [int(i) for c in got for i in c] == list(range(n))
    assert all(1 <= len(c) <= size for c in got)
    assert len(got) == -(-n // size)
