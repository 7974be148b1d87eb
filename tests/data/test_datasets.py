import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from nclab.data import cifar_lt, fashion_mnist_lt, lt_select
from nclab.data.profiles import exponential
from nclab.errors import DataError, NclabError


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def fmnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for train, n in ((True, 40), (False, 20)):
        labels = np.repeat(np.arange(10), n // 10)
        images = rng.integers(0, 256, size=(n, 28, 28))
        pre = "train" if train else "t10k"
        _write_idx(tmp_path / f"{pre}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{pre}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def _ldam_reference(targets, counts, seed):
    """The LDAM-DRW code's rule, written with numpy's *global* seed as that code does."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        kept = []
        for c, n in enumerate(counts):
            idx = np.where(np.asarray(targets) == c)[0]
            np.random.shuffle(idx)
            kept.extend(idx[:n].tolist())
        return np.array(kept)
    finally:
        np.random.set_state(state)


def test_lt_select_reproduces_ldam_rule():
    targets = np.random.default_rng(1).integers(0, 5, size=500)
    counts = [40, 20, 10, 5, 2]
    np.testing.assert_array_equal(lt_select(targets, counts, 0), _ldam_reference(targets, counts, 0))
    np.testing.assert_array_equal(lt_select(targets, counts, 7), _ldam_reference(targets, counts, 7))


def test_fashion_mnist_lt_from_idx_files(fmnist_root):
    d = fashion_mnist_lt(fmnist_root, 4)
    assert d.counts == exponential(4, 10, 4)
    assert d.images.dtype.__str__() == "torch.uint8" and d.images.shape[1:] == (28, 28)
    assert (d.labels.bincount(minlength=10).tolist()) == d.counts
    t = fashion_mnist_lt(fmnist_root, 4, train=False)
    assert t.counts == [2] * 10
    assert (
        len(d.selection_sha256) == 64
        and d.selection_sha256 == fashion_mnist_lt(fmnist_root, 4).selection_sha256
    )


def test_fashion_mnist_missing_and_corrupt(tmp_path, fmnist_root):
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        fashion_mnist_lt(tmp_path / "nowhere", 10)
    f = fmnist_root / "train-images-idx3-ubyte.gz"
    raw = gzip.open(f).read()
    with gzip.open(f, "wb") as fh:
        fh.write(raw[:-100])  # truncated payload
    with pytest.raises(DataError, match="truncated"):
        fashion_mnist_lt(fmnist_root, 10)
    f.write_bytes(b"garbage")
    with pytest.raises(DataError):
        fashion_mnist_lt(fmnist_root, 10)


@pytest.fixture
def cifar_root(tmp_path):
    rng = np.random.default_rng(0)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for i in range(1, 6):
        labels = rng.permutation(np.repeat(np.arange(10), 4)).tolist()
        d = {b"data": rng.integers(0, 256, size=(40, 3072), dtype=np.uint8), b"labels": labels}
        (base / f"data_batch_{i}").write_bytes(pickle.dumps(d))
    (base / "test_batch").write_bytes(
        pickle.dumps(
            {b"data": rng.integers(0, 256, size=(20, 3072), dtype=np.uint8), b"labels": list(range(10)) * 2}
        )
    )
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return tmp_path


def test_cifar10_lt_follows_ldam_rule(cifar_root):
    d = cifar_lt(cifar_root, "cifar10", 10, seed=0)
    all_labels = np.concatenate(
        [
            pickle.loads((cifar_root / "cifar-10-batches-py" / f"data_batch_{i}").read_bytes())[b"labels"]
            for i in range(1, 6)
        ]
    )
    counts = exponential(20, 10, 10)
    ref = _ldam_reference(all_labels, counts, 0)
    np.testing.assert_array_equal(d.indices.numpy(), ref)
    assert d.counts == counts and d.images.shape[1:] == (32, 32, 3)
    raw = pickle.loads((cifar_root / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    first = raw[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    full = cifar_lt(cifar_root, "cifar10", 1)
    np.testing.assert_array_equal(full.images[0].numpy(), first)  # HWC, channel order kept
    assert cifar_lt(cifar_root, "cifar10", 10, train=False).counts == [2] * 10
    assert d.class_names[0] == "c0"


def test_cifar_errors(tmp_path, cifar_root):
    with pytest.raises(DataError, match="does not exist"):
        cifar_lt(tmp_path / "none", "cifar10", 10)
    with pytest.raises(NclabError):
        cifar_lt(cifar_root, "cifar1000", 10)
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04corrupt")
    with pytest.raises(DataError, match="cannot read"):
        cifar_lt(cifar_root, "cifar10", 10)


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
    reason="no Fashion-MNIST",
)
def test_real_fashion_mnist_lt_sizes():
    d = fashion_mnist_lt(None, 100)
    assert d.counts == exponential(6000, 10, 100) and len(d) == 14886
