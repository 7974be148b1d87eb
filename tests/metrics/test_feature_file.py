"""nclab.metrics.feature_file: what a feature file holds comes back as tensors, and measure_file is
measure on them (the refusals of bad files are in test_bad_inputs.py and tests/commands/test_measure.py)."""

import numpy as np
import pytest
import torch

from nclab.errors import DataError
from nclab.metrics import measure
from nclab.metrics.feature_file import load_feature_file, measure_file


def _arrays(seed=0):
    g = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), [8, 5, 3])
    feats = g.normal(size=(16, 4)) + 3 * np.eye(3, 4)[labels]
    return {
        "features": feats.astype(np.float32),
        "labels": labels,
        "weights": np.eye(3, 4),
        "n_train": [80, 50, 3],
    }


def test_npz_and_pt_come_back_as_the_same_tensors(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "f.npz", **a)
    torch.save({k: torch.as_tensor(np.asarray(v)) for k, v in a.items()}, tmp_path / "f.pt")
    for name in ("f.npz", "f.pt"):
        got = load_feature_file(tmp_path / name)
        assert sorted(got) == sorted(a) and all(isinstance(v, torch.Tensor) for v in got.values())
        np.testing.assert_array_equal(got["features"].numpy(), a["features"])
        np.testing.assert_array_equal(got["labels"].numpy(), a["labels"])


def test_measure_file_is_measure_on_the_file(tmp_path):
    a = _arrays()
    a["features"] = a["features"].astype(np.float16)  # half precision is measured in float32
    np.savez(tmp_path / "f.npz", **a)
    ref = measure(
        torch.from_numpy(a["features"].astype(np.float32)),
        torch.from_numpy(a["labels"]),
        torch.from_numpy(a["weights"]),
        center="balanced",
        counts=a["n_train"],
    )
    got = measure_file(tmp_path / "f.npz", center="balanced", counts_key="n_train")
    assert got == ref
    with pytest.raises(DataError, match="no key 'counts_typo'"):
        measure_file(tmp_path / "f.npz", counts_key="counts_typo")
