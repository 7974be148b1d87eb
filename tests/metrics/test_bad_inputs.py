"""Issue #16 item 5: bad inputs to `nclab measure` and `measure()` get errors that say what is wrong."""

import os

import numpy as np
import pytest
import torch

from nclab.cli import main
from nclab.errors import NclabError, ShapeError
from nclab.metrics import measure

H = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
Y = torch.arange(12) % 3


@pytest.mark.parametrize("bs", [0, -1, 2.5, True])
def test_batch_size_must_be_positive(bs):
    with pytest.raises(NclabError, match=f"batch_size must be a positive integer.*got {bs!r}"):
        measure(H, Y, batch_size=bs)


def test_a_weights_matrix_with_too_few_rows_is_reported_as_such():
    with pytest.raises(ShapeError, match=r"weights.shape\[0\] gives K = 2 classes, but labels go up to 2"):
        measure(H, Y, torch.randn(2, 3))


@pytest.mark.parametrize("counts", [[4, -1, 4], [4, 1.5, 4]])
def test_counts_must_be_non_negative_integers_with_or_without_weights(counts):
    with pytest.raises(NclabError, match="counts must be non-negative integers"):
        measure(H, Y, counts=counts)
    with pytest.raises(NclabError, match="counts must be non-negative integers"):
        measure(H, Y, torch.randn(3, 3), counts=counts)


def _measure_file(tmp_path, capsys, name, write):
    path = tmp_path / name
    write(path)
    assert main(["measure", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_an_npz_that_is_not_a_zip_archive(tmp_path, capsys):
    err = _measure_file(tmp_path, capsys, "f.npz", lambda p: p.write_bytes(b"not a zip archive"))
    assert "not a .npz (zip) archive" in err and "numpy.savez" in err
    assert "pickle" not in err and "allow_pickle" not in err  # no advice to load it unsafely


def test_a_truncated_npz(tmp_path, capsys):
    def write(p):
        np.savez(p, features=np.zeros((4, 2)), labels=np.arange(4))
        p.write_bytes(p.read_bytes()[:-30])

    assert "not a .npz (zip) archive" in _measure_file(tmp_path, capsys, "f.npz", write)


def test_string_labels(tmp_path, capsys):
    def write(p):
        np.savez(p, features=np.random.randn(6, 2), labels=np.array(list("abcabc")))

    err = _measure_file(tmp_path, capsys, "f.npz", write)
    assert "'labels' must be numeric" in err and "numpy.unique" in err


def test_object_arrays_are_refused_not_unpickled(tmp_path, capsys):
    def write(p):
        np.savez(p, features=np.zeros((2, 2)), labels=np.array([{"a": 1}, 2], dtype=object))

    assert "object arrays" in _measure_file(tmp_path, capsys, "f.npz", write)


def test_a_pt_file_that_would_run_code(tmp_path, capsys):
    pwned = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {pwned}",))

    err = _measure_file(
        tmp_path, capsys, "f.pt", lambda p: torch.save({"features": Payload(), "labels": torch.zeros(2)}, p)
    )
    assert "loads only tensors" in err and not pwned.exists()
