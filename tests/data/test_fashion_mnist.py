"""Fashion-MNIST from its IDX files (data/fashion_mnist.py): the long-tailed selection, missing,
truncated and corrupt files, and the real set's LT size when it is installed."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from nclab.data import fashion_mnist_lt
from nclab.data.profiles import exponential
from nclab.errors import DataError, NclabError
from tests.data.reference import write_idx


@pytest.fixture
def fmnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for train, n in ((True, 40), (False, 20)):
        labels = np.repeat(np.arange(10), n // 10)
        images = rng.integers(0, 256, size=(n, 28, 28))
        pre = "train" if train else "t10k"
        write_idx(tmp_path / f"{pre}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{pre}-labels-idx1-ubyte.gz", labels)
    return tmp_path


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


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
    reason="no Fashion-MNIST",
)
def test_real_fashion_mnist_lt_sizes():
    d = fashion_mnist_lt(None, 100)
    assert d.counts == exponential(6000, 10, 100) and len(d) == 14886


def test_read_idx_plain_and_gzipped_and_a_bad_header(tmp_path):
    from nclab.data.fashion_mnist import read_idx

    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    plain = tmp_path / "x-idx3-ubyte"
    plain.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2, 3, 4) + arr.tobytes())
    np.testing.assert_array_equal(read_idx(plain, 3), arr)
    write_idx(tmp_path / "x.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz", 3), arr)
    with pytest.raises(DataError, match="magic"):
        read_idx(plain, 1)  # a 3-dim file where a label file (1 dim) is expected
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(short, 1)


def test_step_profile_and_an_unknown_profile(fmnist_root):
    d = fashion_mnist_lt(fmnist_root, 2, profile="step")
    assert d.counts == [4] * 5 + [2] * 5
    with pytest.raises(NclabError, match="profile"):
        fashion_mnist_lt(fmnist_root, 2, profile="linear")


def test_default_root_follows_nclab_data(tmp_path, monkeypatch):
    from nclab.data.fashion_mnist import default_root

    monkeypatch.setenv("NCLAB_DATA", str(tmp_path))
    assert default_root() == Path("/usr/share/datasets/fashion-mnist")  # no fashion-mnist folder there
    (tmp_path / "fashion-mnist").mkdir()
    assert default_root() == tmp_path / "fashion-mnist"
