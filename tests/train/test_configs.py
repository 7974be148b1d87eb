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


def _tiny_imagenet(root: Path, k: int = 3) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, per in (("train", [5, 3, 2]), ("test", [2, 2, 2])):
        lines = []
        for c in range(k):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True)
            for i in range(per[c]):
                arr = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.JPEG", format="JPEG")
                lines.append(f"{split}/n{c:08d}/{i}.JPEG {c}")
        (root / f"ImageNet_LT_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_imagenet_configs_exist():
    names = {p.stem for p in (CONFIGS / "imagenet_lt").glob("*.yaml")}
    assert {
        "ce",
        "focal",
        "cb",
        "ldam_drw",
        "la",
        "balanced_softmax",
        "crt",
        "tau_norm",
        "wb",
        "fixed_etf_dr",
    } <= names
    cfg = load_config(CONFIGS / "imagenet_lt" / "ce.yaml")
    assert cfg.model.name == "resnet50" and cfg.train.epochs == 90 and cfg.data.name == "imagenet_lt"


@pytest.mark.slow
@pytest.mark.parametrize("config,workers", [("ce", 0), ("tau_norm", 2)])
def test_imagenet_config_starts_on_a_tiny_tree(tmp_path, config, workers):
    import json

    root = _tiny_imagenet(tmp_path / "inet")
    args = [
        "train",
        str(CONFIGS / "imagenet_lt" / f"{config}.yaml"),
        f"data.root={root}",
        "data.resize=72",  # 64 px: ResNet-50's last stage still sees 2x2 maps (1x1 maps with batch 4
        "data.crop=64",  # leave BatchNorm's running statistics far from the batch ones after 3 steps)
        f"data.workers={workers}",
        "data.val_fraction=0.3" if config == "tau_norm" else "data.val_fraction=0.0",
        "train.epochs=1",
        "train.batch_size=4",
        "sched.warmup_epochs=0",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    assert main(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["nc/num_samples"] == (10 if config == "ce" else 6)  # val: 2 + 1 + 1 of 5, 3, 2
    assert 0.0 <= rows[-1]["acc/all"] <= 1.0


def test_lazy_images_batches_equal_direct_decoding(tmp_path):
    import torch

    from nclab.data.imagenet_lt import ImageListDataset
    from nclab.data.lazy import LazyImages, chunks, iter_batches

    root = _tiny_imagenet(tmp_path / "inet")
    ds = ImageListDataset(root, root / "ImageNet_LT_train.txt", resize=36, crop=32)
    lazy = LazyImages(ds, num_workers=2)
    assert lazy.shape == (10, 3, 32, 32)
    view = lazy[torch.tensor([7, 1, 3])]
    direct = torch.stack([ds[i][0] for i in (7, 1, 3)])
    got = torch.cat(list(iter_batches(view, chunks(3, 2))))
    assert torch.equal(got, direct) and torch.equal(view.load(), direct)
    assert len(lazy[1::2]) == 5
