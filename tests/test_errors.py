"""The error hierarchy (errors.py): every user-facing error is an NclabError and a ValueError, so one
``except`` catches them all (the CLI's exit code 2), and each kind is its own class."""

import inspect

import pytest

from nclab import errors

KINDS = {
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "MissingClassError",
    "DegenerateError",
    "ConfigError",
    "DataError",
    "RegistryError",
}


def test_every_error_class_derives_from_nclab_error_and_value_error():
    classes = {
        n: c for n, c in vars(errors).items() if inspect.isclass(c) and c.__module__ == errors.__name__
    }
    assert set(classes) == KINDS | {"NclabError"}
    assert issubclass(errors.NclabError, ValueError)
    for name in KINDS:
        cls = classes[name]
        assert cls.__mro__[1] is errors.NclabError, name  # a direct child: no kind hides another
        assert cls.__doc__, name


@pytest.mark.parametrize("name", sorted(KINDS))
def test_raised_kinds_are_caught_as_nclab_and_value_errors_with_their_message(name):
    cls = getattr(errors, name)
    with pytest.raises(errors.NclabError, match="^what: fix$"):
        raise cls("what: fix")
    with pytest.raises(ValueError):
        raise cls("x")
    others = [getattr(errors, n) for n in KINDS - {name}]
    assert not any(isinstance(cls("x"), o) for o in others)
