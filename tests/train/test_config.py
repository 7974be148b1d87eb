"""Config fragments compose: every recipe x method x align triple validates; composition semantics
(left to right, ``defaults`` parents, interpolations, sources); the CIFAR and ImageNet-LT recipes start
on tiny files in the real format."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from nclab.cli import main
from nclab.errors import ConfigError
from nclab.train import load_config
from nclab.train.config import config_sources
from tests.train.helpers import SMOKE

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = sorted(p for p in (CONFIGS / "recipes").glob("*.yaml") if not p.name.startswith("fed_"))
METHODS = sorted((CONFIGS / "methods").glob("*.yaml"))
ALIGNS = [None, *sorted((CONFIGS / "align").glob("*.yaml"))]


def test_the_fragment_layout():
    names = {p.stem for p in RECIPES}
    assert {"synthetic", "fmnist_lt", "cifar10_lt", "cifar100_lt", "imagenet_lt"} <= names
    assert {p.stem for p in ALIGNS[1:]} == {"reg", "slerp", "proj"}
    for m in ("ce", "focal", "cb", "cb_focal", "ldam_drw", "la", "balanced_softmax", "crt", "tau_norm"):
        assert (CONFIGS / "methods" / f"{m}.yaml").is_file(), m
    assert not list(CONFIGS.glob("*.yaml")), "configs/ holds fragments in folders only"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_method_align_triple_validates(recipe):
    """All triples of one recipe (a test per recipe keeps the failure readable)."""
    for method in METHODS:
        for align in ALIGNS:
            files = [recipe, method] + ([align] if align else [])
            cfg = load_config(files)
            assert cfg.train.epochs >= 1
            assert [Path(s).name for s in config_sources(cfg)][-len(files) :] == [f.name for f in files]
            if align:
                assert cfg.align.strategies == [align.stem]


@pytest.mark.parametrize("method", METHODS, ids=lambda p: p.stem)
def test_every_method_fragment_builds_its_parts(method):
    """The fragment's loss, head and sampler options are ones their registries accept."""
    import torch

    from nclab.data.samplers import create_sampler
    from nclab.heads import create_head
    from nclab.losses import create_loss

    cfg = load_config([CONFIGS / "recipes" / "synthetic.yaml", method])
    counts = [8, 4, 2]
    create_loss(cfg.loss.name, counts, **dict(cfg.loss.kwargs))
    d = cfg.model.feature_dim if cfg.head.name != "fixed_etf" else len(counts)
    create_head(cfg.head.name, d, len(counts), **dict(cfg.head.kwargs))
    skw = dict(cfg.sampler.kwargs)
    if cfg.sampler.name == "progressive":
        skw.setdefault("epochs", cfg.train.epochs)
    labels = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
    create_sampler(cfg.sampler.name, labels, counts, seed=0, **skw)


def test_documented_combination_is_one_command():
    """`nclab train recipes/cifar100_lt.yaml methods/ldam_drw.yaml align/slerp.yaml data.imbalance=50`
    is the old generated if50_ldam_drw_spa_slerp.yaml."""
    cfg = load_config(
        [
            CONFIGS / "recipes/cifar100_lt.yaml",
            CONFIGS / "methods/ldam_drw.yaml",
            CONFIGS / "align/slerp.yaml",
        ],
        ["data.imbalance=50"],
    )
    assert (cfg.data.name, cfg.data.imbalance, cfg.data.augment) == ("cifar100", 50, True)
    assert (
        cfg.model.name == "resnet32_cifar" and cfg.train.epochs == 200 and cfg.sched.milestones == [160, 180]
    )
    assert cfg.optim.bias_weight_decay == cfg.optim.weight_decay == 2e-4
    assert cfg.head.name == "cosine" and cfg.head.kwargs == {"tau": 1.0}
    assert cfg.loss.name == "ldam" and cfg.loss.kwargs == {"max_margin": 0.5, "scale": 30.0, "drw_epoch": 160}
    assert cfg.align.strategies == ["slerp"]
    # interpolations follow the composed config: DRW at 80% of the epochs, a fixed ETF's d = K
    assert (
        load_config(
            [CONFIGS / "recipes/cifar100_lt.yaml", CONFIGS / "methods/ldam_drw.yaml"], ["train.epochs=5"]
        ).loss.kwargs["drw_epoch"]
        == 4
    )
    etf = load_config([CONFIGS / "recipes/cifar100_lt.yaml", CONFIGS / "methods/fixed_etf_dr.yaml"])
    assert etf.model.feature_dim == 100 and etf.head.kwargs == {"normalize": True}
    wb = load_config([CONFIGS / "recipes/cifar10_lt.yaml", CONFIGS / "methods/wb.yaml"])
    assert wb.optim.weight_decay == wb.optim.bias_weight_decay == 5e-3 and wb.stage2.method == "wb"


def test_left_to_right_defaults_and_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.yaml").write_text("train: {epochs: 3, batch_size: 16}\noptim: {lr: 0.2}\n")
    (tmp_path / "recipes" / "child.yaml").write_text("defaults: [base.yaml]\ntrain: {epochs: 7}\n")
    (tmp_path / "a.yaml").write_text("optim: {lr: 0.3}\n")
    cfg = load_config(["recipes/child.yaml", "a.yaml"], ["train.batch_size=8"])
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.optim.lr) == (7, 8, 0.3)
    assert config_sources(cfg) == ["recipes/base.yaml", "recipes/child.yaml", "a.yaml"]
    (tmp_path / "loop.yaml").write_text("defaults: [loop2.yaml]\n")
    (tmp_path / "loop2.yaml").write_text("defaults: [loop.yaml]\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config("loop.yaml")
    (tmp_path / "bad.yaml").write_text("train: {epochs: [\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config("bad.yaml")
    (tmp_path / "unknown.yaml").write_text("train: {epoch: 3}\n")
    with pytest.raises(ConfigError, match="Valid keys"):
        load_config("unknown.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(["a.yaml", "missing.yaml"])


def test_train_cli_takes_several_files(tmp_path, monkeypatch):
    import yaml

    run = tmp_path / "run"
    args = [
        "train",
        str(CONFIGS / "recipes/synthetic.yaml"),
        str(CONFIGS / "methods/la.yaml"),
        str(CONFIGS / "align/slerp.yaml"),
        "train.epochs=1",
        "--run-dir",
        str(run),
    ]
    assert main(args) == 0
    rec = yaml.safe_load((run / "config.yaml").read_text())
    assert rec["loss"]["name"] == "la" and rec["align"]["strategies"] == ["slerp"]
    assert [Path(s).name for s in rec["meta"]["sources"]] == ["synthetic.yaml", "la.yaml", "slerp.yaml"]
    assert rec["meta"]["device"] == "cpu" and rec["meta"]["world_size"] == 1  # where it ran


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
    args = [
        "train",
        str(CONFIGS / "recipes" / f"{name}_lt.yaml"),
        str(CONFIGS / "methods" / "ldam_drw.yaml"),
        str(CONFIGS / "align" / "slerp.yaml"),
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


def test_imagenet_recipe():
    cfg = load_config([CONFIGS / "recipes" / "imagenet_lt.yaml", CONFIGS / "methods" / "tau_norm.yaml"])
    assert cfg.model.name == "resnet50" and cfg.train.epochs == 90 and cfg.data.name == "imagenet_lt"
    assert cfg.data.val_fraction == 0.02 and cfg.stage2.method == "tau_norm"


@pytest.mark.slow
@pytest.mark.parametrize("config,workers", [("ce", 0), ("tau_norm", 2)])
def test_imagenet_config_starts_on_a_tiny_tree(tmp_path, config, workers):
    import json

    root = _tiny_imagenet(tmp_path / "inet")
    args = [
        "train",
        str(CONFIGS / "recipes" / "imagenet_lt.yaml"),
        str(CONFIGS / "methods" / f"{config}.yaml"),
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


def test_config_errors_list_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match="Valid keys: .*train.epochs"):
        load_config(SMOKE, ["train.epoch=3"])
    with pytest.raises(ConfigError):
        load_config(SMOKE, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="optim.name"):
        load_config(SMOKE, ["optim.name=lbfgs"])


def test_nc_features_values():
    base = SMOKE
    assert load_config(base).train.nc_features == "raw"
    assert load_config(base, ["train.nc_features=unit"]).train.nc_features == "unit"
    with pytest.raises(ConfigError, match="train.nc_features must be raw or unit"):
        load_config(base, ["train.nc_features=sphere"])
    with pytest.raises(ConfigError, match="use train.nc_source=eval"):
        load_config(base, ["train.nc_features=unit", "train.nc_source=online"])
