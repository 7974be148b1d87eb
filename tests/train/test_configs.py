"""Every shipped training config loads; the CIFAR configs start on tiny files in the real format."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from nclab.cli import main
from nclab.train import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAIN_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "fed")


def test_there_are_canonical_configs():
    names = {p.name for p in (CONFIGS / "cifar10_lt").glob("*.yaml")}
    for imb in (100, 50, 10):
        for m in ("ce", "focal", "cb", "ldam_drw", "la", "balanced_softmax", "fixed_etf_dr"):
            assert f"if{imb}_{m}.yaml" in names
        assert f"if{imb}_la_spa_slerp.yaml" in names
    assert len(list((CONFIGS / "cifar100_lt").glob("*.yaml"))) == len(names)


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg.train.epochs >= 1


def _tiny_cifar(root: Path, name: str, k: int):
    rng = np.random.default_rng(0)
    folder, train_files, test_files, meta, label_key, names_key = {
        "cifar10": (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            ["test_batch"],
            "batches.meta",
            b"labels",
            b"label_names",
        ),
        "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"),
    }[name]
    base = root / folder
    base.mkdir(parents=True)
    per_file = 100 // len(train_files)
    for f in train_files:
        labels = list(np.repeat(np.arange(k), per_file // k if per_file >= k else 1))[: max(per_file, k)]
        labels = [int(x) for x in labels]
        (base / f).write_bytes(
            pickle.dumps(
                {b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), label_key: labels}
            )
        )
    for f in test_files:
        labels = [int(x) for x in np.arange(k)]
        (base / f).write_bytes(
            pickle.dumps({b"data": rng.integers(0, 256, (k, 3072), dtype=np.uint8), label_key: labels})
        )
    (base / meta).write_bytes(pickle.dumps({names_key: [f"c{i}".encode() for i in range(k)]}))


@pytest.mark.slow
@pytest.mark.parametrize("name,k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_config_starts_on_tiny_data(tmp_path, name, k):
    _tiny_cifar(tmp_path / "data", name, k)
    cfg = CONFIGS / f"{name}_lt" / "if10_ldam_drw_spa_slerp.yaml"
    args = [
        "train",
        str(cfg),
        f"data.root={tmp_path / 'data'}",
        "data.imbalance=1",
        "train.epochs=1",
        "train.batch_size=32",
        "sched.warmup_epochs=0",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    assert main(args) == 0
    assert (tmp_path / "run" / "metrics.jsonl").read_text().strip()
