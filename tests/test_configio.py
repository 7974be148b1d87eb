"""Typed configs from a YAML file and dotted overrides (configio.py): the merge order, and errors
that list the valid keys."""

from dataclasses import dataclass, field

import pytest

from nclab.configio import load_structured, valid_keys
from nclab.errors import ConfigError


@dataclass
class _Opt:
    lr: float = 0.1
    kwargs: dict = field(default_factory=dict)


@dataclass
class _Cfg:
    name: str = "a"
    epochs: int = 3
    opt: _Opt = field(default_factory=_Opt)


def test_valid_keys_are_dotted_and_kwargs_is_one_key():
    d = {"name": "a", "opt": {"lr": 0.1, "kwargs": {"beta": 1}, "sched": {"step": 2}}}
    assert valid_keys(d) == ["name", "opt.lr", "opt.kwargs", "opt.sched.step"]
    assert valid_keys({}) == []


def test_schema_then_file_then_overrides(tmp_path):
    assert load_structured(_Cfg, None, None) == _Cfg()
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 5\nopt: {lr: 0.5, kwargs: {beta: 2}}\n")
    got = load_structured(_Cfg, p, ["opt.lr=0.01", "name=b"])
    assert got == _Cfg(name="b", epochs=5, opt=_Opt(lr=0.01, kwargs={"beta": 2}))
    assert isinstance(got, _Cfg) and isinstance(got.opt, _Opt)


def test_errors_name_the_problem_and_list_the_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_structured(_Cfg, tmp_path / "none.yaml", None)
    with pytest.raises(ConfigError, match=r"overrides must be key=value, got \['epochs'\]"):
        load_structured(_Cfg, None, ["epochs"])
    with pytest.raises(
        ConfigError, match="invalid run config: .*Valid keys: name, epochs, opt.lr, opt.kwargs$"
    ):
        load_structured(_Cfg, None, ["epoch=4"], what="run config")
    with pytest.raises(ConfigError, match="invalid config: .*epochs"):
        load_structured(_Cfg, None, ["epochs=many"])
