from pathlib import Path

import pytest

from nclab.errors import NclabError, RegistryError
from nclab.registry import Registry


def test_register_and_create():
    reg = Registry("thing")

    @reg.register
    def alpha(x=1):
        return x

    reg.register(lambda: 2, name="beta")
    assert reg.create("alpha", x=3) == 3
    assert reg.names() == ["alpha", "beta"]
    assert "alpha" in reg


def test_unknown_name_lists_available_and_close_matches():
    reg = Registry("loss")
    reg.register(lambda: 0, name="focal")
    with pytest.raises(RegistryError, match="unknown loss 'focall'.*available: focal.*Did you mean"):
        reg.get("focall")


def test_duplicate_registration_raises():
    reg = Registry("head")
    reg.register(lambda: 0, name="x")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(lambda: 1, name="x")
    assert issubclass(RegistryError, NclabError) and issubclass(NclabError, ValueError)


def _widgets():
    reg = Registry("model")

    @reg.register
    def mlp(*, in_features, hidden=128, feature_dim=64, depth=2):
        return dict(in_features=in_features, hidden=hidden, feature_dim=feature_dim, depth=depth)

    @reg.register
    def cnn(*, in_channels=3, width=64):
        return dict(in_channels=in_channels, width=width)

    @reg.register
    def head(in_features, num_classes, *, bias=True):
        return (in_features, num_classes, bias)

    return reg


def test_unknown_option_lists_accepted_and_close_match():
    reg = _widgets()
    msg = (
        "unknown model option 'hiddne' for mlp; accepted: depth, feature_dim, hidden, in_features. "
        "Did you mean 'hidden'?"
    )
    with pytest.raises(RegistryError) as e:
        reg.create("mlp", in_features=4, hiddne=64)
    assert str(e.value) == msg
    with pytest.raises(RegistryError, match=r"'zzz' for cnn; accepted: in_channels, width\.$"):
        reg.create("cnn", zzz=1)  # no close match: no hint
    # positional arguments are not options: passing one again by keyword is unknown
    with pytest.raises(RegistryError, match="unknown model option 'num_classes' for head; accepted: bias"):
        reg.create("head", 4, 3, num_classes=5)


def test_missing_required_argument_raises_registry_error():
    with pytest.raises(RegistryError, match="model mlp: missing a required argument: 'in_features'"):
        _widgets().create("mlp", hidden=3)


def test_optional_context_reaches_only_factories_that_take_it():
    reg = _widgets()
    ctx = {"in_channels": 1, "in_features": 12}
    assert reg.create("mlp", _optional=ctx)["in_features"] == 12
    assert reg.create("cnn", _optional=ctx) == dict(in_channels=1, width=64)
    assert reg.create("mlp", in_features=5, _optional=ctx)["in_features"] == 5  # explicit keyword wins
    assert reg.create("head", 4, 3, _optional={"in_features": 9, "bias": False}) == (4, 3, False)
    assert reg.accepts("cnn", "in_channels") and not reg.accepts("cnn", "in_features")
    assert reg.options("head", n_positional=2) == ["bias"]
    # a catch-all is trusted to validate what it forwards, and gets no optional context
    reg.register(lambda **kw: kw, name="anything")
    assert reg.create("anything", a=1, _optional={"in_features": 3}) == {"a": 1}


@pytest.mark.parametrize("family", ["models", "heads", "losses", "data.samplers"])
def test_registered_factories_have_no_catch_all(family):
    import importlib
    import inspect

    mod = importlib.import_module(f"nclab.{family}")
    reg = next(v for v in vars(mod).values() if isinstance(v, Registry))
    for name in reg.names():
        kinds = [p.kind for p in inspect.signature(reg.get(name)).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD not in kinds, f"{reg.kind} {name} swallows unknown options"


def test_cli_misspelt_model_option_exits_2_naming_it(tmp_path, capsys):
    from nclab.cli import main

    recipe = Path(__file__).resolve().parents[1] / "configs" / "recipes" / "synthetic.yaml"
    code = main(["train", str(recipe), "model.kwargs.hiddne=64", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "'hiddne'" in err and "accepted: depth, feature_dim, hidden, in_features" in err
    assert "Did you mean 'hidden'?" in err
