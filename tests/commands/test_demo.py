"""nclab.commands.demo: the demo's synthetic feature file (the end-to-end run: tests/test_demo.py)."""

import numpy as np
import pytest

from nclab.cli import main
from nclab.commands.demo import make_demo_features


def test_demo_features_follow_the_profile_and_are_seeded():
    data = make_demo_features(seed=3)
    counts = [int(500 * (1 / 100) ** (i / 9)) for i in range(10)]  # IF = 100 over 10 classes, by hand
    assert data["counts"].tolist() == counts and counts[0] == 500 and counts[-1] == 5
    n = sum(counts)
    assert data["features"].shape == (n, 32) and data["features"].dtype == np.float32
    assert np.bincount(data["labels"]).tolist() == counts
    assert data["weights"].shape == (10, 32) and data["bias"].tolist() == [0.0] * 10
    again = make_demo_features(seed=3)
    assert all(np.array_equal(data[k], again[k]) for k in data)
    assert not np.array_equal(make_demo_features(seed=4)["features"], data["features"])


def test_the_few_shot_classes_are_partly_collapsed():
    """The class means of the few-shot classes (< 20 samples) are closer to each other than the others'."""
    data = make_demo_features()
    h, y, counts = data["features"].astype(np.float64), data["labels"], data["counts"]
    means = np.stack([h[y == c].mean(0) for c in range(10)])
    unit = means - means.mean(0)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    cos = unit @ unit.T

    def mean_pair_cos(idx):
        return np.mean([cos[a, b] for a in idx for b in idx if a < b])

    few = [c for c in range(10) if counts[c] < 20]
    head = [c for c in range(10) if counts[c] >= 20]
    assert len(few) >= 2 and mean_pair_cos(few) > 0.5 > mean_pair_cos(head)


def test_demo_needs_fashion_mnist_when_asked_for_it(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import nclab.data.fashion_mnist as fm
    import nclab.ufm.reproduce as rep

    monkeypatch.setattr(fm, "default_root", lambda: tmp_path / "no_fmnist")
    monkeypatch.setattr(rep, "reproduce", lambda *a, **k: [tmp_path / "fig.png"])  # step 2 is not tested here
    assert main(["demo", "--out", str(tmp_path / "out"), "--data", "fmnist"]) == 2
    err = capsys.readouterr().err
    assert "Fashion-MNIST not found" in err and err.count("\n") == 1
    assert (tmp_path / "out" / "measure.json").is_file() and not (tmp_path / "out" / "runs").exists()
