"""CIFAR from its pickled batches (data/cifar.py): the LDAM-DRW selection, the HWC layout, errors."""

import pickle

import numpy as np
import pytest

from nclab.data import cifar_lt
from nclab.data.profiles import exponential
from nclab.errors import DataError, NclabError
from tests.data.reference import ldam_reference


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
    ref = ldam_reference(all_labels, counts, 0)
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


def test_a_pickle_that_would_run_code_is_refused(cifar_root, tmp_path):
    import os

    pwned = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {pwned}",))

    (cifar_root / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps({b"data": Payload()}))
    with pytest.raises(DataError, match="refusing to load"):
        cifar_lt(cifar_root, "cifar10", 10)
    assert not pwned.exists()


def test_test_split_and_class_names_fallback(cifar_root):
    from nclab.data import load_cifar

    (cifar_root / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps({}))
    images, labels, names = load_cifar(cifar_root, "cifar10", train=False)
    assert images.shape == (20, 32, 32, 3) and labels.tolist() == list(range(10)) * 2
    assert names == [str(i) for i in range(10)]
