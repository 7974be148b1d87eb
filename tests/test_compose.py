"""Composable configs (compose.py): fragments merged left to right after their ``defaults``, overrides
last, interpolations resolved at the end, and errors for every way a composition can go wrong."""

from dataclasses import dataclass, field

import pytest

from nclab.compose import compose, expand_files, is_config_file, split_args
from nclab.errors import ConfigError


@dataclass
class _Train:
    epochs: int = 10
    drw_epoch: int = 0


@dataclass
class _Data:
    num_classes: int = 10


@dataclass
class _Head:
    dim: int = 0


@dataclass
class _Cfg:
    train: _Train = field(default_factory=_Train)
    data: _Data = field(default_factory=_Data)
    head: _Head = field(default_factory=_Head)
    name: str = ""


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "item,is_file",
    [
        ("a.yaml", True),
        ("B.YML", True),
        ("a.yaml=1", False),
        ("x.json", False),
        ("k=v", False),
        ("b.c=x.yaml", False),
        ("data.root=/d/x.yaml", False),
        ("runs/method=ce/seed=0/config.yaml", True),  # a sweep run's resolved config
    ],
)
def test_is_config_file(item, is_file):
    assert is_config_file(item) is is_file


def test_an_existing_yaml_file_whose_folder_holds_an_equals_sign_is_a_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not is_config_file("method=ce/config.yaml")  # not there: the override method='ce/config.yaml'
    (tmp_path / "method=ce").mkdir()
    (tmp_path / "method=ce" / "config.yaml").write_text("seed: 1\n")
    assert is_config_file("method=ce/config.yaml")
    assert split_args(["method=ce/config.yaml", "seed=2"]) == (["method=ce/config.yaml"], ["seed=2"])
    monkeypatch.chdir(tmp_path / "method=ce")  # relative paths are read from root, not the working folder
    assert not is_config_file("method=ce/config.yaml")
    assert is_config_file("method=ce/config.yaml", root=tmp_path)


def test_split_args():
    assert split_args(["r.yaml", "a=1", "m.yml", "b.c=x.yaml"]) == (
        ["r.yaml", "m.yml"],
        ["a=1", "b.c=x.yaml"],
    )
    assert split_args(["out/method=ce/seed=0/config.yaml", "seed=1"]) == (
        ["out/method=ce/seed=0/config.yaml"],
        ["seed=1"],
    )
    with pytest.raises(ConfigError, match="'r.json' is neither a config file"):
        split_args(["r.json"])


def test_defaults_are_merged_first_depth_first(tmp_path):
    (tmp_path / "sub").mkdir()
    base = _write(tmp_path / "base.yaml", "name: base\ntrain: {epochs: 4}\n")
    mid = _write(tmp_path / "sub" / "mid.yaml", "defaults: ../base.yaml\nname: mid\n")
    top = _write(tmp_path / "top.yaml", "defaults: [sub/mid.yaml]\ndata: {num_classes: 3}\n")
    parts = expand_files([top])
    assert [p for p, _ in parts] == [base.resolve(), mid.resolve(), top.resolve()]
    assert all("defaults" not in d for _, d in parts)
    cfg, sources = compose(_Cfg, top)
    assert (cfg.name, cfg.train.epochs, cfg.data.num_classes) == ("mid", 4, 3)
    assert sources == [str(p.resolve()) for p in (base, mid, top)]


def test_files_left_to_right_then_overrides_then_interpolations(tmp_path):
    a = _write(tmp_path / "a.yaml", "name: a\ntrain: {epochs: 20}\nmeta: {ignored: true}\n")
    b = _write(
        tmp_path / "b.yaml", "train: {drw_epoch: '${epoch_frac:0.8}'}\nhead: {dim: '${data.num_classes}'}\n"
    )
    cfg, _ = compose(_Cfg, [a, b], ["train.epochs=30", "data.num_classes=7"])
    assert cfg.name == "a" and cfg.train.epochs == 30
    assert cfg.train.drw_epoch == 24 and cfg.head.dim == 7  # resolved after the overrides: round(0.8 * 30)
    assert compose(_Cfg, None) == (_Cfg(), [])


def test_sources_relative_to_the_working_directory(tmp_path, monkeypatch):
    _write(tmp_path / "a.yaml", "name: a\n")
    monkeypatch.chdir(tmp_path)
    assert compose(_Cfg, "a.yaml")[1] == ["a.yaml"]


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        compose(_Cfg, tmp_path / "none.yaml")
    x = _write(tmp_path / "x.yaml", "defaults: [y.yaml]\n")
    _write(tmp_path / "y.yaml", "defaults: [x.yaml]\n")
    with pytest.raises(ConfigError, match="defaults form a cycle: .*x.yaml -> .*y.yaml -> .*x.yaml"):
        compose(_Cfg, x)
    bad = {
        "list.yaml": ("- 1\n", "must hold a mapping, got list"),
        "syntax.yaml": ("a: [1\n", "cannot read config file"),
        "defaults.yaml": ("defaults: {a: 1}\n", "defaults must be a list"),
        "key.yaml": (
            "nme: a\n",
            r"invalid config in .*key.yaml: .*Valid keys: train.epochs, train.drw_epoch",
        ),
        "type.yaml": ("train: {epochs: many}\n", "invalid config in"),
    }
    for name, (text, msg) in bad.items():
        with pytest.raises(ConfigError, match=msg):
            compose(_Cfg, _write(tmp_path / name, text))
    with pytest.raises(ConfigError, match=r"overrides must be key=value"):
        compose(_Cfg, None, ["name"])
    with pytest.raises(ConfigError, match="invalid run: "):
        compose(_Cfg, None, ["head.dim=${nowhere.key}"], what="run")
    assert compose(_Cfg, _write(tmp_path / "empty.yaml", ""))[0] == _Cfg()


def test_valid_keys_are_dotted_and_kwargs_is_one_key():
    from nclab.compose import valid_keys

    d = {"name": "a", "opt": {"lr": 0.1, "kwargs": {"beta": 1}, "sched": {"step": 2}}}
    assert valid_keys(d) == ["name", "opt.lr", "opt.kwargs", "opt.sched.step"]
    assert valid_keys({}) == []
