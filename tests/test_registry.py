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
